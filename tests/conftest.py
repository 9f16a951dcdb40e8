"""Fixtures shared by test files: a fresh random seed (and keys from it)
per test, and a tiny trained run on real data (per session)."""

import dataclasses
import pathlib
import secrets
import time

import pytest

import tiny_config


@pytest.fixture
def fresh_seed() -> int:
  """A new seed each time the test runs, so that its random inputs are new
  on every run; printed, so a failure shows it (captured output)."""
  seed = secrets.randbelow(2**31)
  print(f"fresh_seed = {seed}")
  return seed


@pytest.fixture
def fresh_key(fresh_seed):
  """``fresh_key(stream)``: a JAX key drawn from ``fresh_seed``, a distinct
  one per stream (the same stream gives the same key within a test)."""
  import jax  # pylint: disable=g-import-not-at-top
  root = jax.random.key(fresh_seed)
  return lambda stream: jax.random.fold_in(root, stream)


@dataclasses.dataclass(frozen=True)
class TinyRun:
  """A finished run on ``blocks/small`` (150 images per split): Seq-MT,
  costs ``L+T+C``, 20% landmark labels, 1 epoch (7 steps).

  Attributes:
    data_dir: the TFDS data dir holding ``blocks/small``.
    workdir: the run.
    seconds: how long building the data and training took.
  """
  data_dir: pathlib.Path
  workdir: pathlib.Path
  seconds: float


@pytest.fixture(scope="session")
def tiny_blocks_run(tmp_path_factory) -> TinyRun:
  """Trains the run of :class:`TinyRun` once per test session (about 20 s
  on a laptop CPU, most of it compilation)."""
  from landmark_ssl import train  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tfds")
  start = time.time()
  config = tiny_config.get_config("blocks")
  config.data.data_dir = str(data_dir)
  config.train.max_epochs = 1.0
  config.train.eval_every_epochs = 1.0
  workdir = tmp_path_factory.mktemp("tiny_blocks_run")
  assert train.train_and_evaluate(config, workdir)["status"] == "finished"
  return TinyRun(data_dir, workdir, time.time() - start)


@dataclasses.dataclass(frozen=True)
class CocoRun:
  """A finished run of ``experiments/custom.py:quick`` on a dataset of your
  own built from the coco_keypoints fixtures (``faces``, 32x32, K = 5, one
  class feature ``lighting``, 3 unlabelled training examples), 4 steps.

  Attributes:
    data_dir: the TFDS data dir holding ``faces``.
    workdir: the run.
    config: its config (``data.name='faces'``).
  """
  data_dir: pathlib.Path
  workdir: pathlib.Path
  config: object


COCO_FIXTURES = (pathlib.Path(__file__).resolve().parents[1] / "data_builders"
                 / "coco_keypoints" / "dummy_data")


def build_coco_fixture(data_dir, name="faces", image_size=32, **settings):
  """Builds the coco_keypoints fixtures as the dataset of your own ``name``."""
  import warnings  # pylint: disable=g-import-not-at-top
  from landmark_ssl import build_data  # pylint: disable=g-import-not-at-top
  settings = dict(dict(validation_fraction=0.2, test_fraction=0.2,
                       classes=str(COCO_FIXTURES / "classes.csv")), **settings)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the fixtures' bad records
    return build_data.build_user_dataset(
        name, str(COCO_FIXTURES), str(COCO_FIXTURES / "annotations.json"),
        data_dir=str(data_dir), image_size=image_size, **settings)


def coco_run_config(data_dir, arg="quick"):
  """``experiments/custom.py:<arg>`` on ``faces``, shrunk to a few steps."""
  from landmark_ssl import configs  # pylint: disable=g-import-not-at-top
  experiment = configs.load_experiment(str(
      pathlib.Path(__file__).resolve().parents[1] / "experiments" /
      "custom.py"))
  config = experiment.get_config(arg)
  config.data.name = "faces"
  config.data.data_dir = str(data_dir)
  config.data.batch_size = 8
  config.data.eval_batch_size = 8
  config.train.max_epochs = 2.0  # 2 steps per epoch (12 train examples)
  config.train.eval_every_epochs = 1.0
  config.train.log_every_steps = 1
  return config


@pytest.fixture(scope="session")
def coco_run(tmp_path_factory) -> CocoRun:
  """Trains the run of :class:`CocoRun` once per test session."""
  from landmark_ssl import train  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("coco_tfds")
  build_coco_fixture(data_dir)
  config = coco_run_config(data_dir)
  workdir = tmp_path_factory.mktemp("coco_run")
  assert train.train_and_evaluate(config, workdir)["status"] == "finished"
  return CocoRun(data_dir, workdir, config)
