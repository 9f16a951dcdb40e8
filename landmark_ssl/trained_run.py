"""A trained run as Python objects: its config, model and best parameters,
and landmarks of image arrays.

  import landmark_ssl
  run = landmark_ssl.load_run("runs/quick")
  landmarks = run.predict(images)  # (N, H, W, C) -> (N, K, 2) (x, y) pixels
  outputs = run.model.apply(run.variables, images, train=False)  # the same

``images`` are what the run's dataset stores and training fed the model:
the stored crop size and channels (``run.image_shape``), ``uint8`` (scaled
by 1/255 here) or floats in ``[0, 1]``. Landmarks are in the pixels of those
images, 0-based, pixel centres at integer coordinates. For image files of
any size (cropped and resized as the dataset builder did, landmarks mapped
back to the file's pixels) use ``python -m landmark_ssl.predict``.

The checkpoint is restored with orbax through ``evaluator.restore_run``; the
run's dataset must be available (its metadata gives the input shape and the
number of landmarks; Shapes / Blocks are built on demand), at the run's
``config.data.data_dir`` or ``data_dir``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import ml_collections
import numpy as np

from landmark_ssl import predict as predict_lib


def check_images(images, image_shape: Sequence[int],
                 dataset: str = "the run's dataset") -> np.ndarray:
  """``images`` as the model's ``(N, H, W, C)`` float32 input in ``[0, 1]``.

  Args:
    images: an array-like of shape ``(N,) + image_shape``, ``uint8``
      (divided by 255) or floating point in ``[0, 1]``.
    image_shape: ``(H, W, C)`` of the run's dataset.
    dataset: its name, for messages.

  Raises:
    ValueError: another shape or dtype, or floats outside ``[0, 1]``; the
      message names the expected shape and how to get it.
  """
  images = np.asarray(images)
  h, w, c = (int(d) for d in image_shape)
  expected = f"(N, {h}, {w}, {c})"
  if images.ndim != 4 or tuple(images.shape[1:]) != (h, w, c):
    hint = ""
    if tuple(images.shape) == (h, w, c):
      hint = " For one image, add the batch axis: images[None]."
    elif images.ndim == 3 and tuple(images.shape[1:]) == (h, w) and c == 1:
      hint = " Add the channel axis: images[..., None]."
    elif images.ndim == 4 and tuple(images.shape[1:3]) != (h, w):
      hint = (f" Crop and resize them to {h}x{w} as the dataset does, or "
              "predict image files of any size with python -m "
              "landmark_ssl.predict.")
    elif images.ndim == 4:
      hint = (f" {dataset} has {c} channel(s)"
              + (": convert to grey." if c == 1 else "."))
    raise ValueError(
        f"predict takes images of shape {expected} ({dataset}'s stored "
        f"images, N of them), got shape {tuple(images.shape)}.{hint}")
  if images.dtype == np.uint8:
    return images.astype(np.float32) / np.float32(255.0)
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(
        f"predict takes uint8 images or floats in [0, 1], got dtype "
        f"{images.dtype}; convert with images.astype(np.uint8) (0-255 "
        "values) or images / 255.")
  images = images.astype(np.float32)
  if images.size and (np.nanmin(images) < 0.0 or np.nanmax(images) > 1.0):
    raise ValueError(
        f"predict takes float images in [0, 1] (as training fed them), got "
        f"values in [{np.nanmin(images):g}, {np.nanmax(images):g}]; divide "
        "0-255 values by 255 or pass them as uint8.")
  return images


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A run restored from its workdir (:func:`load_run`).

  Attributes:
    workdir: the run directory.
    config: the run's config (``config.json``, keys added since at their
      defaults).
    model: the Flax module (``models.create_model`` of ``config.model``).
    params: the restored checkpoint's parameters (numpy arrays); use
      ``model.apply(run.variables, images, train=False)`` for every output
      (landmarks, maps, class logits).
    step: the restored checkpoint's training step (by default the best by
      validation).
    image_shape: ``(H, W, C)`` of the model's input (the dataset's images).
    num_landmarks: ``K``.
    landmark_names: one name per landmark when the dataset stores them,
      else empty.
  """
  workdir: str
  config: ml_collections.ConfigDict
  model: Any
  params: Any
  step: int
  image_shape: tuple[int, int, int]
  num_landmarks: int
  landmark_names: tuple[str, ...]
  predictor: predict_lib.Predictor = dataclasses.field(repr=False)

  @property
  def variables(self) -> dict:
    """``{"params": params}``: the first argument of ``model.apply``."""
    return {"params": self.params}

  def predict(self, images) -> np.ndarray:
    """Landmarks of ``images``.

    Args:
      images: ``(N, H, W, C)`` with ``(H, W, C) = image_shape``, ``uint8`` or
        floats in ``[0, 1]`` (:func:`check_images`); any ``N``.

    Returns:
      ``(N, K, 2)`` float32 ``(x, y)`` in the images' pixels.
    """
    inputs = check_images(images, self.image_shape, self.config.data.name)
    size = self.predictor.batch_size
    out = [self.predictor.predict(inputs[i:i + size])["landmarks"]
           for i in range(0, len(inputs), size)]
    if not out:
      return np.zeros((0, self.num_landmarks, 2), np.float32)
    return np.concatenate(out).astype(np.float32)


def load_run(workdir, step: int | None = None, data_dir: str | None = None,
             batch_size: int = 32) -> TrainedRun:
  """The run in ``workdir`` with its best checkpoint (or ``step``) restored.

  Args:
    workdir: a run directory written by ``python -m landmark_ssl.main``.
    step: a checkpoint step; ``None`` for the best by validation.
    data_dir: the TFDS data dir of the run's dataset, when it is not the
      stored ``config.data.data_dir`` (e.g. a run moved to another machine).
    batch_size: images per forward pass of :meth:`TrainedRun.predict` (one
      compilation; rounded up to a multiple of the devices).

  Raises:
    evaluator.NoCheckpointError: no run, or no checkpoint, in ``workdir``.
  """
  import jax  # pylint: disable=g-import-not-at-top
  predictor = predict_lib.Predictor.load(str(workdir), step, data_dir,
                                         batch_size)
  run = predictor.run
  return TrainedRun(
      workdir=str(workdir), config=run.config, model=run.model,
      params=jax.device_get(run.state.params), step=run.step,
      image_shape=tuple(int(d) for d in run.info.image_shape),
      num_landmarks=int(run.info.num_landmarks),
      landmark_names=tuple(run.info.landmark_names), predictor=predictor)
