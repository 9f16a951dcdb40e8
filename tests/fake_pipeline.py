"""A small in-memory stand-in for ``landmark_ssl.input_pipeline`` (test fixture).

Same API as the real pipeline; the data are 16x16 grey images of one bright
Gaussian blob whose centre is landmark 0 (landmark 1 is 3 px to its right);
the class is the quadrant of the blob. Deterministic from (config, seed,
step), step-indexed, like the real loader.

Dataset ``fake_nan`` is ``fake`` whose training batches from index
``NAN_BATCH`` on hold a labelled image with NaN landmarks (to test the NaN
guard), for even seeds only: odd seeds stay clean, so that one run of a
several-seed program can fail while the others go on.
"""

from __future__ import annotations

import collections
import json
import os

import numpy as np

from landmark_ssl import rundir

SIZE = 16
K = 2
SPLITS = {"train": 96, "validation": 40, "test": 36}
NAN_BATCH = 7
LABEL_SUBSET_FILE = rundir.LABEL_SUBSET

DatasetInfo = collections.namedtuple(
    "DatasetInfo", "name image_shape num_landmarks classes split_sizes")


def _split(name: str):
  n = SPLITS[name]
  rng = np.random.default_rng(list(SPLITS).index(name) + 100)
  centre = rng.uniform(3, SIZE - 6, size=(n, 2)).astype(np.float32)
  ys, xs = np.mgrid[0:SIZE, 0:SIZE]
  d2 = (xs[None] - centre[:, 0, None, None]) ** 2 + (
      ys[None] - centre[:, 1, None, None]) ** 2
  image = np.exp(-d2 / 4.0)[..., None].astype(np.float32)
  landmarks = np.stack([centre, centre + [3.0, 0.0]], axis=1).astype(np.float32)
  label = ((centre[:, 0] > SIZE / 2 - 1.5).astype(np.int32) +
           2 * (centre[:, 1] > SIZE / 2 - 1.5).astype(np.int32))
  return {"image": image, "landmarks": landmarks,
          "visible": np.ones((n, K), np.float32),
          "normalizer": np.full((n,), 2.0, np.float32),
          "labels": {"label": label}}


def get_dataset_info(data_config):
  if data_config.name not in ("fake", "fake_nan"):
    raise FileNotFoundError(
        f"Dataset {data_config.name!r} not found in the test fixture.")
  return DatasetInfo(data_config.name, (SIZE, SIZE, 1), K, {"label": 4}, dict(SPLITS))


def with_class_heads(config, info):
  """As the real pipeline's: ``class_heads = ('*',)`` is every class
  feature (this module stands in for ``landmark_ssl.input_pipeline`` in
  ``sys.modules`` under fake_main, so it cannot import the real one)."""
  if "*" not in tuple(config.data.class_heads):
    return config
  resolved = config.copy_and_resolve_references()
  resolved.data.class_heads = tuple(sorted(info.classes))
  return resolved


def check_readable(data_config, splits):
  """In-memory data cannot be damaged; the splits must exist."""
  del data_config
  for split in splits:
    if split not in SPLITS:
      raise ValueError(f"no split {split!r} in the test fixture.")


def content_digest(data_config, splits):
  """As the real pipeline's, over the in-memory arrays (one digest per
  split of its whole arrays, not per example)."""
  import hashlib  # pylint: disable=g-import-not-at-top
  out = {}
  for split in dict.fromkeys(splits):
    data = _split(split)
    digest = hashlib.sha256()
    for key in ("image", "landmarks", "visible", "normalizer"):
      digest.update(np.ascontiguousarray(data[key]).tobytes())
    out[split] = {"examples": SPLITS[split], "sha256": digest.hexdigest()}
  return {"name": data_config.name, "version": "fake", "splits": out}


def subset_digest(indices):
  import hashlib  # pylint: disable=g-import-not-at-top
  return hashlib.sha256(
      np.sort(np.asarray(indices, dtype="<i8")).tobytes()).hexdigest()


def select_labeled(data_config, seed):
  n = SPLITS[data_config.train_split]
  count = max(1, int(round(data_config.labeled_fraction * n)))
  return np.sort(np.random.default_rng(seed).permutation(n)[:count])


def save_labeled(workdir, indices, **metadata):
  del metadata
  with open(os.path.join(os.fspath(workdir), LABEL_SUBSET_FILE), "w") as f:
    json.dump({"indices": [int(i) for i in indices]}, f)


def load_labeled(workdir):
  with open(os.path.join(os.fspath(workdir), LABEL_SUBSET_FILE)) as f:
    return np.asarray(json.load(f)["indices"], np.int64)


def labeled_subset(data_config, seed, workdir, write=True):
  if os.path.exists(os.path.join(os.fspath(workdir), LABEL_SUBSET_FILE)):
    return load_labeled(workdir)
  indices = select_labeled(data_config, seed)
  if write:
    save_labeled(workdir, indices)
  return indices


def _take(data, idx):
  out = {k: v[idx] for k, v in data.items() if k != "labels"}
  out["labels"] = {k: v[idx] for k, v in data["labels"].items()}
  return out


class TrainLoader:

  def __init__(self, data_config, seed, labeled_indices, process_index=None,
               process_count=None, *, labeled_only=False, row_multiple=1):
    # labeled_only is an optimisation of the real loader (the same costs on
    # fewer rows); the fixture always yields whole batches.
    del labeled_only, row_multiple
    self._data = _split(data_config.train_split)
    self._n = SPLITS[data_config.train_split]
    self._batch = int(data_config.batch_size)
    self._seed = seed
    self._nan = data_config.name == "fake_nan"
    self._has = np.zeros((self._n,), np.float32)
    self._has[np.asarray(labeled_indices, np.int64)] = 1.0
    self.steps_per_epoch = self._n // self._batch
    self.global_batch_size = self._batch

  def get_batch(self, step):
    epoch, i = divmod(int(step), self.steps_per_epoch)
    perm = np.random.default_rng([self._seed, epoch, 7]).permutation(self._n)
    idx = perm[i * self._batch:(i + 1) * self._batch]
    batch = _take(self._data, idx)
    batch["has_landmarks"] = self._has[idx]
    batch["mask"] = np.ones((len(idx),), np.float32)
    if self._nan and self._seed % 2 == 0 and step >= NAN_BATCH:
      batch["landmarks"][0] = np.nan
      batch["has_landmarks"][0] = 1.0
    return batch

  def iterate(self, start_step=0):
    step = int(start_step)
    while True:
      yield self.get_batch(step)
      step += 1


def eval_batches(data_config, split, process_index=None, process_count=None):
  data = _split(split)
  n, b = SPLITS[split], int(data_config.eval_batch_size)
  for start in range(0, n, b):
    idx = np.arange(start, start + b)
    real = idx < n
    batch = _take(data, np.minimum(idx, n - 1))
    batch["has_landmarks"] = np.ones((b,), np.float32)
    batch["index"] = np.minimum(idx, n - 1).astype(np.int32)
    batch["mask"] = real.astype(np.float32)
    yield batch
