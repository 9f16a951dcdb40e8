"""Session fixtures shared by test files: a tiny trained run on real data."""

import dataclasses
import pathlib
import time

import pytest

import tiny_config


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
