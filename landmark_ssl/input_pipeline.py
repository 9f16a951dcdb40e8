"""Input pipeline: TFDS array_record data sources -> grain -> numpy batches.

What a run reads (the batch layout: docs/DESIGN.md, "Conventions"):

* ``get_dataset_info(data_config)``: shapes and class counts of a dataset.
  Opening ``shapes`` or ``blocks`` that is not built yet builds it (a few
  seconds); a real dataset that is not built raises an error that gives the
  ``python -m landmark_ssl.build_data`` command. ``with_class_heads``
  resolves ``class_heads = ('*',)`` (every class feature of the dataset).
* ``select_labeled(data_config, seed)``: which train images keep their
  landmark labels. ``round(labeled_fraction * N_train)`` images (at least
  one), stratified over the joint value of all class features (largest
  remainder allocation, so each class keeps its share of the labelled
  subset to within one image; uniform when the dataset has no class
  feature), drawn from ``seed``. ``save_labeled`` / ``load_labeled`` keep the
  choice in ``<workdir>/label_subset.json``; ``labeled_subset`` does
  load-or-select-and-save and checks that a saved subset matches the config.

  **A dataset with a fixed labelled subset** (your own data: the COCO
  keypoints builder marks each example's ``has_landmarks``) stores the
  per-example flag ``has_landmarks``; ``fixed_labels`` tells. Then only
  flagged train examples can be chosen, ``N_train`` above is the number of
  flagged ones, and ``labeled_fraction`` is the fraction *of the labelled
  examples* that keeps its labels: 1.0 means all of them (the unflagged
  examples are always unlabelled). The batch composition below then uses
  the share of labelled train examples, ``len(labelled) / N_train``, as
  the labelled fraction.
* ``TrainLoader``: the training batches, a pure function of
  ``(data config, seed, labelled indices, step)``.
* ``eval_batches``: one pass over a split in fixed-size padded batches.
* ``content_digest`` / ``subset_digest``: what a run read (each split's
  decoded examples, the label subset) as SHA-256 digests, for
  ``results.json``.

Batch composition (the paper leaves it open). Every global training batch of
``B = batch_size`` rows holds ``n_lab`` labelled images (``has_landmarks = 1``)
and ``B - n_lab`` unlabelled ones (``has_landmarks = 0``; their class labels
are kept, their landmarks are in the arrays but must not be used):
``n_lab = B`` if ``labeled_fraction == 1`` (or no image is left unlabelled),
else ``min(B, max(1, round(B * labeled_fraction), ceil(B * labeled_share)))``.
So ``labeled_share`` (default 0) guarantees labelled images in every batch
even at 1% labels. The labelled rows are spread evenly over the batch (row
``r`` is labelled iff ``floor((r + 1) n_lab / B) > floor(r n_lab / B)``), so
every process and device gets its share of them. The two pools (labelled
and unlabelled train images) are read as two endless streams, each a fresh
permutation of its pool per pass, drawn from the seed; step ``s`` takes
positions ``[s n_lab, (s + 1) n_lab)`` of the labelled stream and
``[s (B - n_lab), (s + 1)(B - n_lab))`` of the unlabelled one. An **epoch**
is ``steps_per_epoch = ceil(N_train / B)`` steps: as many images as the
train split holds, whatever their mix (with ``labeled_share`` above the
labelled fraction, the labelled pool is seen several times per epoch and
the unlabelled pool less than once).

Costs that use nothing of an unlabelled image (``'L'`` alone; ``train``
decides) read batches with ``TrainLoader(..., labeled_only=True)``: step
``s`` holds only the ``n_lab`` labelled images of step ``s`` above, padded
with masked rows to a multiple of the device count. The landmark cost is a
mean over labelled rows and no model layer mixes rows, so the cost and its
gradients are those of the whole batch (to float32 rounding; tested), at
``n_lab / B`` of the model's work (a quarter with ``labeled_share = 0.25``).
With augmentation on, the transforms are drawn per row of the batch, so
they differ from the whole batch's draws (same distribution).

Multi-process: process ``p`` of ``P`` gets rows ``[p B / P, (p + 1) B / P)``
of every global batch and reads only those examples; ``B`` must be divisible
by ``P``. Concatenating the process batches in process order gives the
global batch. Every process yields the same number of eval batches.

Settings read from ``config.data`` (ml_collections ``ConfigDict``):
``name``, ``data_dir`` (None: TFDS default), ``labeled_fraction``,
``labeled_share`` (default 0), ``batch_size``, ``eval_batch_size``,
``train_split`` (default ``'train'``), ``cache_mib`` (default 1024), and
the optional loader knobs ``read_threads`` (default 2) and
``prefetch_batches`` (default 4).

Splits in memory: a split whose decoded arrays take at most ``cache_mib``
MiB (Blocks: 11 MiB a split) is decoded once per process, at its first
read, into one numpy array per numeric feature (``InMemorySplit``);
batches are then gathered by index instead of decoding each record
(``python -m landmark_ssl.bench.input_pipeline`` prints the loader's
images/s both ways: on this project's CPU about 170,000 against 4,000 for
Blocks). The values are those of the records, so the batches are the
same either way. ``cache_mib = 0`` reads every batch from the files.

Batches are numpy dicts: ``image`` ``(B, H, W, C) float32`` in [0, 1],
``landmarks`` ``(B, K, 2)``, ``visible`` ``(B, K)``, ``has_landmarks``,
``normalizer``, ``mask`` ``(B,)`` float32, ``labels`` ``{feature: (B,)
int32}``, and ``index`` ``(B,) int32``, each row's example index in its
split (for tracing; padding rows repeat example 0).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
from typing import Any, Iterable, Iterator, Mapping, Sequence

from absl import logging
from array_record.python import array_record_module
from etils import epath
import grain
import numpy as np
import tensorflow_datasets as tfds

from landmark_ssl import build_data
from landmark_ssl import rundir

# The feature of a dataset with a fixed labelled subset (module docstring).
LABELED_FLAG = "has_landmarks"
# config.data.class_heads entry meaning "every class feature of the dataset".
ALL_CLASS_FEATURES = "*"
DEFAULT_READ_THREADS = 2
DEFAULT_PREFETCH_BATCHES = 4
DEFAULT_CACHE_MIB = 1024
# Purposes of the random streams derived from a run seed.
_SELECT, _LABELED_POOL, _UNLABELED_POOL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the model and the loop need to know about a dataset.

  Attributes:
    name: the dataset name of the config (e.g. ``'blocks'``).
    image_shape: ``(H, W, C)`` of the stored (and batched) images.
    num_landmarks: ``K``.
    classes: ``{class feature: number of classes}``, empty for 300W.
    split_sizes: ``{split: number of examples}``.
    landmark_names: one name per landmark when the builder stored them
      (``metadata['landmark_names']``, e.g. HGR1's ``"<category>/<type>"``),
      else empty.
  """
  name: str
  image_shape: tuple[int, int, int]
  num_landmarks: int
  classes: Mapping[str, int]
  split_sizes: Mapping[str, int]
  landmark_names: tuple[str, ...] = ()


def landmark_names(builder) -> tuple[str, ...]:
  """The builder's stored landmark names (``metadata['landmark_names']``),
  or ``()`` when it stores none."""
  metadata = builder.info.metadata or {}
  return tuple(str(n) for n in metadata.get("landmark_names", ()) or ())


# --------------------------------------------------------------------------
# opening datasets


def _setting(data_config: Any, key: str, default: Any = None) -> Any:
  if isinstance(data_config, Mapping) or hasattr(data_config, "get"):
    return data_config.get(key, default)
  return getattr(data_config, key, default)


def open_dataset(data_config: Any):
  """The prepared TFDS builder of ``config.data.name`` in ``data_dir``.

  Builds ``shapes`` / ``blocks`` if they are missing (logged); raises
  ``FileNotFoundError`` with the build command for a missing real dataset.
  """
  name = _setting(data_config, "name")
  data_dir = _setting(data_config, "data_dir")
  base, _ = build_data.split_name(name)
  builder = build_data.make_builder(name, data_dir)
  if builder.is_prepared():
    return builder
  if base in build_data.SYNTHETIC:
    logging.info("Dataset %s is not built in %s; building it now.", name,
                 builder.data_dir)
    return build_data.build(name, data_dir)
  dir_flag = f" --data_dir={data_dir}" if data_dir else ""
  raise FileNotFoundError(
      f"Dataset {name!r} is not built in {builder.data_dir} "
      f"(config.data.data_dir={data_dir!r}). Build it once with:\n"
      f"  python -m landmark_ssl.build_data --dataset={name}{dir_flag} "
      f"--manual_dir=<directory with the downloaded files, laid out as the README's 'Datasets' table shows>")


def class_features(builder) -> tuple[str, ...]:
  """Names of the ``ClassLabel`` features of a dataset, sorted."""
  features = builder.info.features
  return tuple(sorted(k for k, f in features.items()
                      if isinstance(f, tfds.features.ClassLabel)))


def dataset_info(builder, name: str | None = None) -> DatasetInfo:
  """The ``DatasetInfo`` of an opened builder."""
  features = builder.info.features
  return DatasetInfo(
      name=name or builder.name,
      image_shape=tuple(int(d) for d in features["image"].shape),
      num_landmarks=int(features["landmarks"].shape[0]),
      classes={k: int(features[k].num_classes) for k in class_features(builder)},
      split_sizes={k: int(v.num_examples)
                   for k, v in builder.info.splits.items()},
      landmark_names=landmark_names(builder),
  )


def with_class_heads(config: Any, info: DatasetInfo) -> Any:
  """``config`` with ``data.class_heads`` ``('*',)`` (``ALL_CLASS_FEATURES``:
  every class feature of the dataset, as ``experiments/custom.py`` sets
  it) replaced by ``info``'s class features, sorted; a config that names
  its heads is returned as it is.

  Raises:
    ValueError: the costs have a class term (``C``) but the dataset has no
      class feature.
  """
  heads = tuple(config.data.class_heads)
  if ALL_CLASS_FEATURES not in heads:
    return config
  resolved = config.copy_and_resolve_references()
  resolved.data.class_heads = tuple(sorted(info.classes))
  if not info.classes and "C" in str(config.costs).split("+"):
    raise ValueError(
        f"config.costs={config.costs!r} has a class term (C), but dataset "
        f"{info.name!r} has no class feature: train with costs without C "
        "(e.g. --config=experiments/custom.py:costs=L+T), or build the "
        "dataset with class labels (build_data --classes=<file.csv>).")
  return resolved


def get_dataset_info(data_config: Any) -> DatasetInfo:
  """``DatasetInfo`` of ``config.data.name`` (building synthetic data if missing)."""
  return dataset_info(open_dataset(data_config), _setting(data_config, "name"))


def _source(builder, split: str, setting: str):
  splits = list(builder.info.splits.keys())
  if split not in splits:
    raise ValueError(
        f"Split {split!r} (config.data.{setting}) is not a split of dataset "
        f"{builder.name!r}; its splits are {splits}. Set "
        f"config.data.{setting} to one of them.")
  return _NamedSource(builder.as_data_source(split=split), builder, split)


# --------------------------------------------------------------------------
# splits decoded into memory


class InMemorySplit:
  """A split decoded into host memory: ``arrays[feature]`` holds every
  example's value of ``feature``, stacked in example order."""

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    self.arrays = dict(arrays)
    sizes = {len(a) for a in self.arrays.values()}
    if len(sizes) != 1:
      raise ValueError(f"features of different lengths: {sorted(sizes)}")
    self._len = sizes.pop()

  def __len__(self) -> int:
    return self._len

  @property
  def nbytes(self) -> int:
    return sum(a.nbytes for a in self.arrays.values())

  def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """``{feature: values of examples indices}`` (copies)."""
    indices = np.asarray(indices, np.int64)
    return {k: a[indices] for k, a in self.arrays.items()}


def decode_split(source, max_bytes: int) -> InMemorySplit | None:
  """The numeric features of ``source``'s examples (text ones, such as an
  example id, are left out) decoded into an :class:`InMemorySplit`, or None
  where they would take more than ``max_bytes`` (estimated from the first
  example) or cannot be stacked (nested features, or shapes that vary
  between examples)."""
  n = len(source)
  if n == 0 or max_bytes <= 0:
    return None
  first = source[0]
  if any(isinstance(v, Mapping) for v in first.values()):
    return None
  keys = [k for k, v in first.items() if np.asarray(v).dtype.kind in "biuf"]
  if not keys or sum(np.asarray(first[k]).nbytes for k in keys) * n > max_bytes:
    return None
  chunks: dict[str, list] = {k: [] for k in keys}
  for start in range(0, n, 256):
    records = source.__getitems__(list(range(start, min(n, start + 256))))
    for key, out in chunks.items():
      try:
        out.append(np.stack([np.asarray(r[key]) for r in records]))
      except ValueError:  # shapes differ between examples
        return None
  try:
    arrays = {k: np.concatenate(v) for k, v in chunks.items()}
  except ValueError:
    return None
  return InMemorySplit(arrays)


# Splits decoded by this process, by (dataset version dir, split, the
# files' sizes and times: a rebuilt dataset is decoded again).
_IN_MEMORY: dict = {}


def _cache_bytes(data_config: Any) -> int:
  mib = _setting(data_config, "cache_mib")
  mib = DEFAULT_CACHE_MIB if mib is None else float(mib)
  return int(mib * 2**20)


def split_in_memory(builder, split: str, source, max_bytes: int
                    ) -> InMemorySplit | None:
  """``split`` of ``builder`` decoded into memory once per process (the
  same object for every later call), or None where it does not fit in
  ``max_bytes`` (then read ``source``, the split's data source)."""
  if max_bytes <= 0:
    return None
  try:  # epath: local files and cloud buckets alike
    stats = [(str(f), epath.Path(f).stat())
             for f in builder.info.splits[split].filepaths]
  except (OSError, NotImplementedError):
    return None  # a file system that cannot say when the files changed
  files = tuple((f, st.length, st.mtime) for f, st in stats)
  key = (str(builder.data_dir), split, files)
  entry = _IN_MEMORY.get(key)  # (the budget it was tried with, the split)
  if entry is None or (entry[1] is None and max_bytes > entry[0]):
    entry = _IN_MEMORY[key] = (max_bytes, decode_split(source, max_bytes))
    if entry[1] is not None:
      logging.info("Split %r of %s decoded into memory: %d examples, %.1f MiB "
                   "(config.data.cache_mib=0 reads it from the files).",
                   split, builder.name, len(entry[1]), entry[1].nbytes / 2**20)
  memory = entry[1]
  if memory is not None and memory.nbytes > max_bytes:
    return None  # decoded earlier under a larger budget
  return memory


# --------------------------------------------------------------------------
# damaged files


class CorruptDatasetError(ValueError):
  """A dataset file cannot be read: it is damaged on disk (the message
  names it and how to rebuild the dataset)."""


def _damaged(builder, split: str, path, error: Exception) -> str:
  """The message of a damaged file ``path`` of ``split``: the file, the
  reader's complaint, and how to rebuild the dataset."""
  config = getattr(builder, "builder_config", None)
  name = builder.name + (f"/{config.name}" if config is not None else "")
  version_dir = epath.Path(builder.data_dir)
  root = version_dir.parents[2 if config is not None else 1]
  manual = ("" if builder.name in build_data.SYNTHETIC else
            " --manual_dir=<the downloaded files>")
  reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return (f"{path} (split {split!r} of dataset {name!r}) is damaged: "
          f"{reason[:200]}. Delete {version_dir} and build the dataset "
          f"again: python -m landmark_ssl.build_data --dataset={name} "
          f"--data_dir={root}{manual}")


def _check_file(builder, split: str, path) -> None:
  """Reads every record of one array_record file of ``split`` (raw bytes,
  no decoding: every block's checksum is verified).

  Raises:
    CorruptDatasetError: naming the file and the fix.
  """
  try:
    reader = array_record_module.ArrayRecordReader(os.fspath(path))
    try:
      n = reader.num_records()
      for start in range(0, n, 256):
        reader.read(list(range(start, min(n, start + 256))))
    finally:
      reader.close()
  except (RuntimeError, OSError, ValueError) as e:
    raise CorruptDatasetError(_damaged(builder, split, path, e)) from None


def check_readable(data_config: Any, splits: Sequence[str]) -> None:
  """Reads every file of ``splits`` of ``config.data.name`` end to end (a
  few milliseconds per megabyte), so that a damaged file stops a run before
  its first step rather than at its final evaluation.

  Raises:
    CorruptDatasetError: naming the first damaged file and how to rebuild.
  """
  builder = open_dataset(data_config)
  for split in dict.fromkeys(splits):
    for path in builder.info.splits[split].filepaths:
      _check_file(builder, split, path)


# --------------------------------------------------------------------------
# what a run read: the content digest


def examples_digest(examples: Iterable[Mapping[str, Any]]) -> str:
  """SHA-256 (hex) of decoded examples, in order: for each example, each
  feature in sorted name order as its name, dtype, shape and bytes.

  A digest of what a run reads, not of the files: two builds of the same
  data give the same digest even where their array_record bytes differ
  (the serialised records are not byte-stable between builds).
  """
  digest = hashlib.sha256()
  for example in examples:
    for key in sorted(example):
      value = np.asarray(example[key])
      digest.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
      digest.update(value.tobytes())  # C order, whatever the layout
  return digest.hexdigest()


def _examples(source, chunk: int = 256) -> Iterator[Mapping[str, Any]]:
  for start in range(0, len(source), chunk):
    yield from source.__getitems__(
        list(range(start, min(len(source), start + chunk))))


def content_digest(data_config: Any, splits: Sequence[str]) -> dict:
  """``{"name", "version", "splits": {split: {"examples", "sha256"}}}``:
  the dataset a run reads, by the ``examples_digest`` of each of ``splits``
  (about a second per 3000 Blocks images on one CPU core). ``train``
  computes it once, when its runs finish, and stores it in
  ``results.json`` under ``"data"``, so runs on two machines can be
  checked to have read the same data."""
  builder = open_dataset(data_config)
  out = {}
  for split in dict.fromkeys(splits):
    source = _NamedSource(builder.as_data_source(split=split), builder, split)
    out[split] = {"examples": len(source),
                  "sha256": examples_digest(_examples(source))}
  return {"name": _setting(data_config, "name"),
          "version": str(builder.version), "splits": out}


def subset_digest(indices: np.ndarray) -> str:
  """SHA-256 (hex) of a label subset: its sorted indices as little-endian
  int64 (``results.json``'s ``label_subset.sha256``)."""
  return hashlib.sha256(
      np.sort(np.asarray(indices, dtype="<i8")).tobytes()).hexdigest()


class _NamedSource:
  """A split's data source whose read errors (array_record's "Corrupted
  Riegeli/records file ... at byte N") name the damaged file and the fix."""

  def __init__(self, source, builder, split: str):
    self._source, self._builder, self._split = source, builder, split

  def __len__(self) -> int:
    return len(self._source)

  def _read(self, read, arg):
    try:
      return read(arg)
    except RuntimeError as e:
      files = self._builder.info.splits[self._split].filepaths
      for path in files:  # which one
        _check_file(self._builder, self._split, path)
      raise CorruptDatasetError(_damaged(
          self._builder, self._split, ", ".join(map(str, files)), e)) from None

  def __getitem__(self, index):
    return self._read(self._source.__getitem__, index)

  def __getitems__(self, indices):
    return self._read(self._source.__getitems__, indices)

  def __getattr__(self, name):
    return getattr(self._source, name)


# --------------------------------------------------------------------------
# checks of the settings


def _labeled_fraction(data_config: Any) -> float:
  value = _setting(data_config, "labeled_fraction")
  if value is None or not 0.0 < float(value) <= 1.0:
    raise ValueError(
        f"config.data.labeled_fraction={value!r} must be in (0, 1]: the "
        f"fraction of train images that keep their landmark labels (e.g. "
        f"0.05 for 5%, 1.0 for all). Set --config.data.labeled_fraction.")
  return float(value)


def _labeled_share(data_config: Any) -> float:
  value = _setting(data_config, "labeled_share", 0.0)
  value = 0.0 if value is None else value
  if not 0.0 <= float(value) <= 1.0:
    raise ValueError(
        f"config.data.labeled_share={value!r} must be in [0, 1]: the minimum "
        f"share of each training batch drawn from the labelled images. Set "
        f"--config.data.labeled_share.")
  return float(value)


def _process_share(batch_size: Any, setting: str, process_index: int | None,
                   process_count: int | None) -> tuple[int, int, int]:
  """``(process_index, process_count, local batch size)``, checked."""
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} is not in "
                     f"[0, process_count={process_count}).")
  if batch_size is None or int(batch_size) <= 0:
    raise ValueError(f"config.data.{setting}={batch_size!r} must be a "
                     f"positive integer; set --config.data.{setting}.")
  batch_size = int(batch_size)
  if batch_size % process_count:
    raise ValueError(
        f"config.data.{setting}={batch_size} is not divisible by the "
        f"{process_count} processes; set --config.data.{setting} to a "
        f"multiple of {process_count} (each process loads an equal share).")
  return process_index, process_count, batch_size // process_count


def labeled_rows_per_batch(batch_size: int, labeled_fraction: float,
                           labeled_share: float) -> int:
  """``n_lab``: labelled rows in each global batch (module docstring)."""
  if labeled_fraction >= 1.0:
    return batch_size
  n = max(1, round(batch_size * labeled_fraction),
          math.ceil(batch_size * labeled_share - 1e-9))
  return min(batch_size, n)


def labeled_row_mask(batch_size: int, n_lab: int) -> np.ndarray:
  """``(B,) bool``: which rows of a global batch are labelled, spread evenly."""
  r = np.arange(batch_size)
  return (r + 1) * n_lab // batch_size > r * n_lab // batch_size


# --------------------------------------------------------------------------
# the labelled subset


def _read_labels(source, names: Sequence[str]) -> np.ndarray:
  """``(N, len(names)) int64`` class labels of every example of a source."""
  n = len(source)
  out = np.zeros((n, len(names)), np.int64)
  if names:
    chunk = 512
    for start in range(0, n, chunk):
      records = source.__getitems__(list(range(start, min(n, start + chunk))))
      for i, rec in enumerate(records):
        out[start + i] = [int(rec[k]) for k in names]
  return out


def stratified_choice(strata: np.ndarray, count: int,
                      rng: np.random.Generator) -> np.ndarray:
  """Chooses ``count`` of ``len(strata)`` items, stratified by ``strata``.

  Each stratum gets ``floor(count * size / N)`` items, and the remaining ones
  go to the strata with the largest fractional parts (ties broken at random).

  Args:
    strata: ``(N, F)`` integer keys (one row per item).
    count: how many to choose, in ``[0, N]``.
    rng: the random generator.

  Returns:
    Sorted ``int64`` indices of the chosen items.
  """
  n = len(strata)
  keys, inverse = np.unique(strata.reshape(n, -1), axis=0, return_inverse=True)
  inverse = inverse.reshape(-1)
  sizes = np.bincount(inverse, minlength=len(keys))
  quota = count * sizes / n
  take = np.floor(quota).astype(int)
  left = count - take.sum()
  order = np.lexsort((rng.random(len(keys)), -(quota - take)))
  take[order[:left]] += 1
  chosen = [rng.choice(np.flatnonzero(inverse == s), t, replace=False)
            for s, t in enumerate(take)]
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def fixed_labels(builder) -> bool:
  """Whether the dataset stores which examples have landmark labels (the
  ``has_landmarks`` feature; module docstring)."""
  return LABELED_FLAG in builder.info.features


def read_labeled_flags(source) -> np.ndarray:
  """``(N,) bool``: the ``has_landmarks`` flag of every example of a source
  of a dataset with :func:`fixed_labels`."""
  n = len(source)
  out = np.zeros((n,), bool)
  chunk = 512
  for start in range(0, n, chunk):
    records = source.__getitems__(list(range(start, min(n, start + chunk))))
    out[start:start + len(records)] = [bool(r[LABELED_FLAG]) for r in records]
  return out


def select_labeled(data_config: Any, seed: int) -> np.ndarray:
  """Sorted train indices that keep their landmark labels (module docstring)."""
  fraction = _labeled_fraction(data_config)
  builder = open_dataset(data_config)
  split = _setting(data_config, "train_split", "train")
  source = _source(builder, split, "train_split")
  n = len(source)
  pool = np.arange(n)
  if fixed_labels(builder):
    pool = np.flatnonzero(read_labeled_flags(source))
    if pool.size == 0:
      raise ValueError(
          f"Split {split!r} of dataset {_setting(data_config, 'name')!r} has "
          "no example with landmark labels (has_landmarks); label keypoints "
          "of a few training images and build the dataset again.")
  count = max(1, round(fraction * pool.size))
  strata = _read_labels(source, class_features(builder))
  rng = np.random.default_rng((int(seed), _SELECT))
  return pool[stratified_choice(strata[pool], count, rng)]


def save_labeled(workdir: str | epath.PathLike, indices: np.ndarray,
                 **metadata: Any) -> epath.Path:
  """Writes the labelled subset to ``<workdir>/label_subset.json``.

  ``metadata`` (e.g. ``dataset``, ``labeled_fraction``, ``seed``) is stored
  beside the indices and checked by ``labeled_subset``.
  """
  path = rundir.RunDir(workdir).label_subset_file
  path.parent.mkdir(parents=True, exist_ok=True)
  payload = dict(metadata, indices=[int(i) for i in np.asarray(indices)])
  rundir.write_json(path, payload)
  return path


def load_labeled(workdir: str | epath.PathLike) -> np.ndarray | None:
  """The indices saved by ``save_labeled``, or None if there are none."""
  path = rundir.RunDir(workdir).label_subset_file
  if not path.exists():
    return None
  try:
    payload = json.loads(path.read_text())
    return np.asarray(payload["indices"], np.int64)
  except (ValueError, KeyError, TypeError) as e:
    raise rundir.CorruptFileError(
        f"{path} is not a label subset file written by save_labeled ({e}). "
        "It records which training images keep their landmarks: restore it "
        "from a copy; or, for a run that drew its own subset (not a suggest "
        "--next_workdir round) and has not finished, delete it: training "
        "draws the same subset again from the config's seed.") from e


def labeled_subset(data_config: Any, seed: int,
                   workdir: str | epath.PathLike | None,
                   write: bool = True) -> np.ndarray:
  """The run's labelled subset: loaded from ``workdir`` if saved, else drawn
  with ``select_labeled`` and (if ``write``) saved there.

  Raises:
    ValueError: the saved subset was drawn for another dataset, fraction or
      seed than the config's.
  """
  meta = dict(dataset=str(_setting(data_config, "name")),
              labeled_fraction=_labeled_fraction(data_config), seed=int(seed))
  if workdir is not None:
    path = rundir.RunDir(workdir).label_subset_file
    saved = load_labeled(workdir)
    if saved is not None:
      stored = json.loads(path.read_text())
      for key, value in meta.items():
        if stored.get(key) != value:
          raise ValueError(
              f"{path} holds a labelled subset for {key}={stored.get(key)!r} "
              f"but this run has {key}={value!r}; use a fresh --workdir (or "
              f"delete the file to draw a new subset).")
      return saved
  indices = select_labeled(data_config, seed)
  if workdir is not None and write:
    save_labeled(workdir, indices, **meta)
  return indices


# --------------------------------------------------------------------------
# reading batches


class PoolStream:
  """An endless stream over a pool of indices, a fresh permutation per pass.

  Position ``t`` is ``pool[perm_e[t % n]]`` with ``e = t // n`` and
  ``perm_e`` drawn from ``np.random.default_rng((seed, purpose, e))``: a pure
  function of ``(pool, seed, purpose, t)``. (grain's ``shuffle().repeat()``
  has the same semantics, but its index shuffle costs milliseconds per
  lookup on pools of tens of images, as the 1%-labelled pools are.)
  """

  def __init__(self, pool: np.ndarray, seed: int, purpose: int):
    self.pool = np.asarray(pool, np.int64)
    if self.pool.size == 0:
      raise ValueError("PoolStream needs a non-empty pool.")
    self._seed = (int(seed), int(purpose))
    # A batch spans at most a few passes; keep the last ones.
    self._permutation = functools.lru_cache(maxsize=4)(self._draw)

  def _draw(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng(self._seed + (int(epoch),))
    return self.pool[rng.permutation(self.pool.size)]

  def take(self, positions: np.ndarray) -> np.ndarray:
    """The pool indices at stream ``positions`` (any int array)."""
    positions = np.asarray(positions, np.int64)
    epochs, within = np.divmod(positions, self.pool.size)
    out = np.empty_like(positions)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self._permutation(int(e))[within[sel]]
    return out


def read_batch(source, indices: np.ndarray, has_landmarks: np.ndarray,
               mask: np.ndarray, names: Sequence[str]) -> dict:
  """Reads examples ``indices`` of a TFDS data source (or of an
  :class:`InMemorySplit`, the same values) into one batch dict."""
  if isinstance(source, InMemorySplit):
    values = source.gather(indices)
    stack = lambda key, dtype: values[key].astype(dtype)
    has = lambda key: key in values
  else:
    records = source.__getitems__([int(i) for i in indices])
    stack = lambda key, dtype: np.stack(
        [np.asarray(r[key]) for r in records]).astype(dtype)
    has = lambda key: key in records[0]
  batch = {
      "image": stack("image", np.float32) / np.float32(255.0),
      "landmarks": stack("landmarks", np.float32),
      "visible": stack("visible", np.float32),
      "normalizer": stack("normalizer", np.float32),
      "labels": {k: stack(k, np.int32) for k in names},
      "has_landmarks": np.asarray(has_landmarks, np.float32),
      "mask": np.asarray(mask, np.float32),
      "index": np.asarray(indices, np.int32),
  }
  if has("shape_size"):
    # Shapes: the extent (circumradius) of the object each landmark marks,
    # for evaluation.hit_rates ("does the landmark land on its shape").
    batch["landmark_radius"] = stack("shape_size", np.float32)
  return batch


def _read_options(data_config: Any) -> grain.ReadOptions:
  return grain.ReadOptions(
      num_threads=int(_setting(data_config, "read_threads",
                               DEFAULT_READ_THREADS)),
      prefetch_buffer_size=int(_setting(data_config, "prefetch_batches",
                                        DEFAULT_PREFETCH_BATCHES)))


class TrainLoader:
  """Training batches of one process; batch ``s`` is a pure function of
  ``(data config, seed, labelled indices, s)`` (module docstring).

  Args:
    data_config: ``config.data``.
    seed: the run seed (shuffling of both pools).
    labeled_indices: train indices that keep their landmark labels (e.g.
      from ``labeled_subset``); all others are unlabelled.
    process_index, process_count: this process and the number of processes
      (default: ``jax.process_index()``, ``jax.process_count()``).
    dataset: an opened TFDS builder to read instead of ``data_config.name``
      (benchmarks, tests).
    labeled_only: read only the ``n_lab`` labelled rows of each global batch
      (for costs that use nothing of an unlabelled image: ``'L'``). Step
      ``s`` then holds exactly the labelled images of step ``s`` of the
      full loader (same streams and positions; in stream order rather
      than spread over the batch), so a mean over labelled rows is
      unchanged while the model runs on ``n_lab`` rows instead of ``B``.
      The global batch is padded to a multiple of ``row_multiple`` rows
      with copies of its first image (``mask = has_landmarks = 0``).
      ``steps_per_epoch`` stays ``ceil(N_train / B)``.
    row_multiple: with ``labeled_only``, the global batch's row count is
      rounded up to a multiple of this (the device count, so it shards).

  Attributes:
    info: the ``DatasetInfo``.
    steps_per_epoch: ``ceil(N_train / batch_size)``.
    labeled_per_batch: ``n_lab`` of the global batch.
    global_batch_size: rows of the global batch (``batch_size``, or ``n_lab``
      rounded up to ``row_multiple`` with ``labeled_only``).
    local_batch_size: rows of this process's batches.
    in_memory: whether the train split is read from memory
      (``split_in_memory``) rather than from its files.
  """

  def __init__(self, data_config: Any, seed: int,
               labeled_indices: Sequence[int] | np.ndarray,
               process_index: int | None = None,
               process_count: int | None = None, *, dataset: Any = None,
               labeled_only: bool = False, row_multiple: int = 1):
    fraction = _labeled_fraction(data_config)
    share = _labeled_share(data_config)
    batch_size = _setting(data_config, "batch_size")
    process_index, process_count, _ = _process_share(
        batch_size, "batch_size", process_index, process_count)
    batch_size = int(batch_size)
    builder = open_dataset(data_config) if dataset is None else dataset
    self.info = dataset_info(builder, _setting(data_config, "name"))
    self._names = class_features(builder)
    split = _setting(data_config, "train_split", "train")
    self._source = _source(builder, split, "train_split")
    n = len(self._source)
    memory = split_in_memory(builder, split, self._source,
                             _cache_bytes(data_config))
    self.in_memory = memory is not None
    self._reader = self._source if memory is None else memory

    labeled = np.unique(np.asarray(labeled_indices, np.int64))
    if labeled.size == 0 or labeled[0] < 0 or labeled[-1] >= n:
      raise ValueError(
          f"labeled_indices must be a non-empty set of indices of the "
          f"{n}-example {split!r} split (got {labeled.size} indices in "
          f"[{labeled.min(initial=0)}, {labeled.max(initial=0)}]); draw them "
          f"with input_pipeline.labeled_subset for this dataset.")
    if fixed_labels(builder):
      flagged = read_labeled_flags(self._source)
      if not flagged[labeled].all():
        raise ValueError(
            f"labeled_indices include {int((~flagged[labeled]).sum())} "
            f"example(s) of {split!r} without landmark labels (has_landmarks "
            "is false): the dataset was built again since the subset was "
            "drawn; train in a fresh --workdir.")
      fraction = labeled.size / n  # the share of labelled train examples
    unlabeled = np.setdiff1d(np.arange(n), labeled)
    n_lab = labeled_rows_per_batch(batch_size, fraction, share)
    if unlabeled.size == 0:
      n_lab = batch_size
    self.labeled_per_batch = n_lab
    self.steps_per_epoch = math.ceil(n / batch_size)
    self._n_unl = batch_size - n_lab  # unlabelled rows of the full batch

    if labeled_only and n_lab < batch_size:
      if int(row_multiple) < 1:
        raise ValueError(f"row_multiple={row_multiple!r} must be >= 1.")
      multiple = math.lcm(int(row_multiple), process_count)
      rows_total = -(-n_lab // multiple) * multiple
      rows = np.ones(rows_total, bool)
      real = np.arange(rows_total) < n_lab
      # Padding rows repeat the batch's first labelled image (masked out).
      rank = np.where(real, np.arange(rows_total), 0)
      unlabeled_pool = None
    else:
      rows_total = batch_size
      rows = labeled_row_mask(batch_size, n_lab)
      real = np.ones(batch_size, bool)
      # Rank of each global row within its pool's rows of the batch.
      rank = np.where(rows, np.cumsum(rows) - 1, np.cumsum(~rows) - 1)
      unlabeled_pool = unlabeled if n_lab < batch_size else None
    self.global_batch_size = rows_total
    self.process_index, self.process_count = process_index, process_count
    self.local_batch_size = rows_total // process_count
    lo = self.process_index * self.local_batch_size
    local = slice(lo, lo + self.local_batch_size)
    self._rows, self._rank = rows[local], rank[local]
    self._mask = real[local].astype(np.float32)
    self._has = (rows & real)[local]
    self._labeled = PoolStream(labeled, seed, _LABELED_POOL)
    self._unlabeled = (None if unlabeled_pool is None else
                       PoolStream(unlabeled_pool, seed, _UNLABELED_POOL))
    self._read_options = _read_options(data_config)
    self._batches = (grain.MapDataset.range(0, sys.maxsize)
                     .map(self._indices_of_step).map(self._read))

  def _indices_of_step(self, step: int) -> np.ndarray:
    """``(local B,)`` train indices of this process's rows of batch ``step``."""
    step = int(step)
    n_lab = self.labeled_per_batch
    n_unl = self._n_unl
    out = np.empty(self.local_batch_size, np.int64)
    out[self._rows] = self._labeled.take(step * n_lab + self._rank[self._rows])
    if self._unlabeled is not None and (~self._rows).any():
      out[~self._rows] = self._unlabeled.take(
          step * n_unl + self._rank[~self._rows])
    return out

  def _read(self, indices: np.ndarray) -> dict:
    return read_batch(self._reader, indices, self._has, self._mask,
                      self._names)

  def get_batch(self, step: int) -> dict:
    """This process's rows of global batch ``step`` (a numpy dict)."""
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}.")
    return self._batches[int(step)]

  def iterate(self, start_step: int = 0) -> Iterator[dict]:
    """Endless prefetching iterator: ``get_batch(start_step)``, then the next.

    Uses ``read_threads`` threads and ``prefetch_batches`` batches ahead
    (``config.data``); ``close()`` the returned iterator to stop them early.
    """
    if start_step < 0:
      raise ValueError(f"start_step must be >= 0, got {start_step}.")
    return iter(self._batches[int(start_step):]
                .to_iter_dataset(self._read_options))


def eval_batches(data_config: Any, split: str,
                 process_index: int | None = None,
                 process_count: int | None = None, *,
                 batch_size: int | None = None,
                 dataset: Any = None) -> Iterator[dict]:
  """One pass over ``split`` in batches of this process's share of
  ``eval_batch_size`` (or ``batch_size``).

  Global batch ``b`` holds examples ``[b E, (b + 1) E)``; process ``p`` gets
  rows ``[p E / P, (p + 1) E / P)`` of it. Rows past the end of the split are
  padding (``mask = 0``, a copy of example 0), so every process yields
  ``ceil(N / E)`` batches of the same shape and every example appears
  exactly once with ``mask = 1`` across processes. ``has_landmarks`` is 1.
  """
  setting = "eval_batch_size" if batch_size is None else "batch_size"
  size = _setting(data_config, "eval_batch_size") if batch_size is None else batch_size
  process_index, process_count, local = _process_share(
      size, setting, process_index, process_count)
  size = int(size)
  builder = open_dataset(data_config) if dataset is None else dataset
  names = class_features(builder)
  source = _source(builder, split, "eval_split / test_splits")
  n = len(source)
  num_batches = math.ceil(n / size)
  memory = split_in_memory(builder, split, source, _cache_bytes(data_config))
  source = source if memory is None else memory

  def read(b: int) -> dict:
    pos = b * size + process_index * local + np.arange(local)
    real = pos < n
    return read_batch(source, np.where(real, pos, 0), np.ones(local), real,
                      names)

  batches = grain.MapDataset.range(num_batches).map(read)
  return iter(batches.to_iter_dataset(_read_options(data_config)))
