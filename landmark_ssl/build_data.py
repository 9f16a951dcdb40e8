r"""Builds a landmark_ssl dataset as TFDS array_record files.

  python -m landmark_ssl.build_data --dataset=blocks --data_dir=~/tensorflow_datasets
  python -m landmark_ssl.build_data --dataset=the300w --manual_dir=/data/300w

``--dataset`` is one of ``DATASETS`` (``shapes``, ``blocks``, ``hgr1``,
``multipie``, ``the300w``), optionally with a builder config as TFDS spells
it (``blocks/small``). The synthetic datasets need no input; the real ones
read the downloaded files (layouts: the README's "Datasets" table and each
builder's ``LAYOUT``) from ``--manual_dir``.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

# name -> (module, class) of its TFDS builder; modules are imported on demand
# so that a builder that is missing or broken only affects its own dataset.
DATASETS = {
    "shapes": ("data_builders.shapes.shapes_dataset_builder", "Shapes"),
    "blocks": ("data_builders.blocks.blocks_dataset_builder", "Blocks"),
    "hgr1": ("data_builders.hgr1.hgr1_dataset_builder", "Hgr1"),
    "multipie": ("data_builders.multipie.multipie_dataset_builder", "Multipie"),
    "the300w": ("data_builders.the300w.the300w_dataset_builder", "The300w"),
}
SYNTHETIC = ("shapes", "blocks")  # built on demand, without --manual_dir


def split_name(dataset: str) -> tuple[str, str | None]:
  """``'blocks/small'`` -> ``('blocks', 'small')``; ``'blocks'`` -> ``('blocks', None)``.

  Raises:
    ValueError: if the dataset name is not one of ``DATASETS``.
  """
  name, _, config = str(dataset).partition("/")
  if name not in DATASETS:
    raise ValueError(
        f"Unknown dataset {dataset!r} (config.data.name / --dataset); valid "
        f"names are {sorted(DATASETS)}, optionally followed by '/<builder "
        f"config>' (e.g. 'blocks/small').")
  return name, (config or None)


def builder_class(dataset: str) -> type:
  """The TFDS builder class of ``dataset`` (``name`` or ``name/config``).

  Raises:
    ValueError: unknown name.
    ImportError: the builder module of a known name cannot be imported.
  """
  name, _ = split_name(dataset)
  module_name, class_name = DATASETS[name]
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ImportError(
        f"The builder of dataset {name!r} ({module_name}.{class_name}) cannot "
        f"be imported: {e}. Check that the data_builders package is installed "
        f"(`pip install -e .`, or run from the repository root) and that "
        f"{module_name.replace('.', '/')}.py exists.") from e
  try:
    return getattr(module, class_name)
  except AttributeError as e:
    raise ImportError(f"{module_name} defines no builder class {class_name!r}."
                      ) from e


def make_builder(dataset: str, data_dir: str | None = None):
  """An array_record builder of ``dataset`` reading and writing under
  ``data_dir`` (None: the TFDS default, ``~/tensorflow_datasets``)."""
  _, config = split_name(dataset)
  cls = builder_class(dataset)
  kwargs = dict(data_dir=data_dir, file_format="array_record")
  if config is not None:
    configs = [c.name for c in (cls.BUILDER_CONFIGS or [])]
    if config not in configs:
      raise ValueError(
          f"Dataset {dataset!r}: {split_name(dataset)[0]!r} has no builder "
          f"config {config!r}; its configs are {configs or 'none'} (use "
          f"'name/config', or just 'name' for the default).")
    kwargs["config"] = config
  return cls(**kwargs)


def build(dataset: str, data_dir: str | None = None,
          manual_dir: str | None = None):
  """Builds ``dataset`` unless already built; returns its builder."""
  builder = make_builder(dataset, data_dir)
  if builder.is_prepared():
    logging.info("%s is already built in %s.", dataset, builder.data_dir)
    return builder
  download_config = (tfds.download.DownloadConfig(manual_dir=manual_dir)
                     if manual_dir else None)
  logging.info("Building %s into %s.", dataset, builder.data_dir)
  builder.download_and_prepare(download_config=download_config,
                               file_format="array_record")
  return builder


def _define_flags() -> None:
  """The CLI flags; defined only when run as a program, so that importing
  this module (the registry) never clashes with another binary's flags."""
  flags.DEFINE_string(
      "dataset", None, f"Dataset to build: one of {sorted(DATASETS)}, "
      "optionally '/<builder config>' (e.g. blocks/small).", required=True)
  flags.DEFINE_string(
      "data_dir", None,
      "TFDS data dir to write to (default ~/tensorflow_datasets).")
  flags.DEFINE_string(
      "manual_dir", None, "Directory holding the downloaded files of a real "
      "dataset (layouts: README, \"Datasets\"); unused by shapes and blocks.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  from data_builders.manual_data import ManualDataError  # pylint: disable=g-import-not-at-top
  try:
    builder = build(f.dataset, f.data_dir, f.manual_dir)
  except (ManualDataError, ValueError, ImportError) as e:
    # Errors a user causes (missing/malformed files, unknown names) get their
    # message alone, not a traceback.
    raise SystemExit(f"build_data: {e}") from None
  print(f"{f.dataset}: built in {builder.data_dir}")
  for split, info in builder.info.splits.items():
    print(f"  {split}: {info.num_examples} examples")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
