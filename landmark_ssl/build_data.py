r"""Builds a landmark_ssl dataset as TFDS array_record files.

  python -m landmark_ssl.build_data --dataset=blocks --data_dir=~/tensorflow_datasets
  python -m landmark_ssl.build_data --dataset=the300w --manual_dir=/data/300w
  python -m landmark_ssl.build_data --dataset=coco_keypoints --name=mydata \
      --manual_dir=<images> --annotations=<file.json> [--classes=<file.csv>]

``--dataset`` is one of ``DATASETS`` (``shapes``, ``blocks``, ``hgr1``,
``multipie``, ``the300w``, ``coco_keypoints``), optionally with a builder
config as TFDS spells it (``blocks/small``). The synthetic datasets need no
input; the real ones read the downloaded files (layouts: the README's
"Datasets" table and each builder's ``LAYOUT``) from ``--manual_dir``.

``coco_keypoints`` builds a dataset of your own from a COCO keypoints file
under the name ``--name`` (``data_builders.coco_keypoints``): runs open it
as ``config.data.name=<name>``, and several such datasets live side by side
in one ``--data_dir``. Its options: ``--classes`` (class table CSV),
``--normalizer`` (``bbox`` or two keypoint names), ``--image_size``,
``--enlarge``, ``--validation_fraction``, ``--test_fraction``,
``--split_seed`` (the split when the data gives none), ``--overwrite``.
"""

from __future__ import annotations

import importlib
import os
import re
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
    "coco_keypoints": ("data_builders.coco_keypoints."
                       "coco_keypoints_dataset_builder", "CocoKeypoints"),
}
SYNTHETIC = ("shapes", "blocks")  # built on demand, without --manual_dir
# Datasets of your own: a builder config per name, made at build time.
USER = "coco_keypoints"
_USER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _unknown(dataset: str, extra: str = "") -> ValueError:
  return ValueError(
      f"Unknown dataset {dataset!r} (config.data.name / --dataset); valid "
      f"names are {sorted(set(DATASETS) - {USER})}, optionally followed by "
      f"'/<builder config>' (e.g. 'blocks/small'), or the --name of a "
      f"dataset of your own built with --dataset={USER}.{extra}")


def split_name(dataset: str) -> tuple[str, str | None]:
  """``'blocks/small'`` -> ``('blocks', 'small')``; ``'blocks'`` -> ``('blocks', None)``.

  Any other name that can name a dataset of your own is one:
  ``'mydata'`` -> ``('coco_keypoints', 'mydata')`` (whether it is built is
  :func:`make_builder`'s question).

  Raises:
    ValueError: if the dataset name is none of these.
  """
  name, _, config = str(dataset).partition("/")
  if name not in DATASETS:
    if not config and _USER_NAME.match(name):
      return USER, name
    hint = (" config.data.name is empty: set --config.data.name=<dataset>."
            if not name else "")
    raise _unknown(dataset, hint)
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
  base, config = split_name(dataset)
  cls = builder_class(dataset)
  kwargs = dict(data_dir=data_dir, file_format="array_record")
  if base == USER:
    return _user_builder(cls, dataset, config, data_dir)
  if config is not None:
    configs = [c.name for c in (cls.BUILDER_CONFIGS or [])]
    if config not in configs:
      raise ValueError(
          f"Dataset {dataset!r}: {split_name(dataset)[0]!r} has no builder "
          f"config {config!r}; its configs are {configs or 'none'} (use "
          f"'name/config', or just 'name' for the default).")
    kwargs["config"] = config
  return cls(**kwargs)


def _user_builder(cls, dataset: str, name: str | None,
                  data_dir: str | None):
  """The builder of the dataset of your own ``name`` built in ``data_dir``.

  Raises:
    ValueError: no name, or no dataset of that name built there.
  """
  module = importlib.import_module(DATASETS[USER][0])
  built = module.built_names(data_dir)
  if name is None:
    raise ValueError(
        f"Dataset {dataset!r}: {USER} needs the name of a dataset of your own "
        f"({USER}/<name>, or just <name>); built in "
        f"{module.dataset_dir(data_dir, '<name>').parent.parent}: "
        f"{built or 'none'}.")
  config = module.stored_config(data_dir, name)
  if config is None:
    flag = f" --data_dir={data_dir}" if data_dir else ""
    raise _unknown(dataset, (
        f" No dataset of your own named {name!r} is built in "
        f"{module.dataset_dir(data_dir, name).parent.parent} (built there: "
        f"{built or 'none'}); build it with python -m landmark_ssl.build_data "
        f"--dataset={USER} --name={name}{flag} --manual_dir=<images> "
        "--annotations=<file.json>, or set config.data.data_dir to the "
        "folder it was built in."))
  return cls(config=config, data_dir=data_dir, file_format="array_record")


def build_user_dataset(name: str, manual_dir: str, annotations: str,
                       classes: str | None = None,
                       data_dir: str | None = None, overwrite: bool = False,
                       **settings):
  """Builds the dataset of your own ``name`` from a COCO keypoints file and
  its images (``data_builders.coco_keypoints``); returns its builder.

  Args:
    name: the dataset's name (``config.data.name`` of runs on it).
    manual_dir: the folder the images' ``file_name`` fields are relative to.
    annotations: the COCO keypoints JSON file.
    classes: a class table CSV, or None.
    data_dir: TFDS data dir (None: the TFDS default).
    overwrite: replace a dataset of the same name.
    **settings: ``image_size``, ``enlarge``, ``normalizer``,
      ``validation_fraction``, ``test_fraction``, ``split_seed``.

  Raises:
    ValueError: a bad name or setting.
    ManualDataError: unusable files (the message says which and the fix).
  """
  module = importlib.import_module(DATASETS[USER][0])
  if not manual_dir:
    raise ValueError(f"--dataset={USER} needs --manual_dir: the folder the "
                     "images' file_name fields are relative to.")
  if not annotations:
    raise ValueError(f"--dataset={USER} needs --annotations: the COCO "
                     "keypoints JSON file.")
  config = module.make_config(name, annotations, classes,
                              reserved=tuple(DATASETS), **settings)
  logging.info("Building %s into %s.", name,
               module.dataset_dir(data_dir, name))
  return module.build(config, manual_dir, data_dir, overwrite)


def build(dataset: str, data_dir: str | None = None,
          manual_dir: str | None = None):
  """Builds ``dataset`` unless already built; returns its builder."""
  if split_name(dataset)[0] == USER:
    raise ValueError(f"{USER} datasets are built with --dataset={USER} "
                     "--name=<name> --annotations=<file.json> (see "
                     "build_user_dataset).")
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
      "dataset (layouts: README, \"Datasets\"); unused by shapes and blocks. "
      f"For {USER}: the folder the images' file_name fields are relative "
      "to.")
  flags.DEFINE_string(
      "name", None, f"{USER}: the name of your dataset (runs open it with "
      "--config.data.name=<name>).")
  flags.DEFINE_string("annotations", None,
                      f"{USER}: the COCO keypoints JSON file.")
  flags.DEFINE_string(
      "classes", None, f"{USER}: a CSV with a column image_id or file_name "
      "and one column per class feature (optional; also 'split').")
  flags.DEFINE_string(
      "normalizer", "bbox", f"{USER}: the error normaliser: 'bbox' (the box "
      "diagonal) or two keypoint names, e.g. 'left_eye,right_eye'.")
  flags.DEFINE_integer("image_size", 64,
                       f"{USER}: side of the stored square images (pixels).")
  flags.DEFINE_float("enlarge", 1.2, f"{USER}: the crop square's side over "
                     "the longer side of the box.")
  flags.DEFINE_float("validation_fraction", 0.1, f"{USER}: share of the "
                     "labelled images in 'validation' when the data gives "
                     "no split.")
  flags.DEFINE_float("test_fraction", 0.1, f"{USER}: share of the labelled "
                     "images in 'test' when the data gives no split.")
  flags.DEFINE_integer("split_seed", 0, f"{USER}: seed of that split.")
  flags.DEFINE_bool("overwrite", False, f"{USER}: replace a dataset of the "
                    "same --name.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  from data_builders.manual_data import ManualDataError  # pylint: disable=g-import-not-at-top
  try:
    for flag in ("data_dir", "manual_dir"):
      given = getattr(f, flag, None)
      if (given and "://" not in given and
          os.path.isfile(os.path.expanduser(given))):
        raise ValueError(f"--{flag}={given} is a file, not a directory; give "
                         "a directory.")
    if (split_name(f.dataset)[0] == USER
        and f.dataset.partition("/")[0] != USER):  # a bare name: a typo?
      raise _unknown(f.dataset, (
          f" To build a dataset of your own named {f.dataset!r}: "
          f"--dataset={USER} --name={f.dataset} --manual_dir=<its images> "
          "--annotations=<its COCO keypoints file>."))
    if split_name(f.dataset)[0] == USER:
      if f.name is None and split_name(f.dataset)[1] is None:
        raise ValueError(f"--dataset={USER} needs --name=<your dataset's "
                         "name>.")
      builder = build_user_dataset(
          f.name or split_name(f.dataset)[1], f.manual_dir, f.annotations,
          f.classes, f.data_dir, f.overwrite, image_size=f.image_size,
          enlarge=f.enlarge, normalizer=f.normalizer,
          validation_fraction=f.validation_fraction,
          test_fraction=f.test_fraction, split_seed=f.split_seed)
    else:
      builder = build(f.dataset, f.data_dir, f.manual_dir)
  except (ManualDataError, ValueError, ImportError) as e:
    # Errors a user causes (missing/malformed files, unknown names) get their
    # message alone, not a traceback.
    raise SystemExit(f"build_data: {e}") from None
  shown = (builder.builder_config.name if split_name(f.dataset)[0] == USER
           else f.dataset)
  print(f"{shown}: built in {builder.data_dir}")
  labelled = (builder.info.metadata or {}).get("labeled_examples") or {}
  for split, info in builder.info.splits.items():
    extra = (f" ({labelled[split]} with labelled keypoints)"
             if split in labelled else "")
    print(f"  {split}: {info.num_examples} examples{extra}")
  skipped = (builder.info.metadata or {}).get("skipped") or {}
  if skipped:
    print(f"  left out: {sum(skipped.values())} record(s): " + "; ".join(
        f"{reason} {n}" for reason, n in sorted(skipped.items())))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
