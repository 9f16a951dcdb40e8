r"""Throughput of the training input: TrainLoader.iterate + jitted augment.

  python -m landmark_ssl.bench.input_pipeline [--data_dir=DIR] [--steps=60]

Prints images/s for two pipelines, each with its train split decoded in
memory (``config.data.cache_mib``, the default) and read from its files
(``cache_mib = 0``), each measured three ways (the augmentation alone on
one batch, the loader alone, and both, as a train loop sees them: the next
batch is prefetched by grain threads while the augmentation of the current
one runs on the CPU device):

* ``blocks``: the full Blocks dataset (built into ``--data_dir`` if missing;
  default: a temporary dir, about 15 s), 5% labels, labeled share 0.25,
  augmentation rotation 20 deg, scale and translation 0.1.
* ``300w-sized``: a throwaway array_record dataset shaped like the 300W
  crops (80x80 grey, 68 landmarks, 2834 train images of noise), all labels,
  augmentation rotation 30 deg, scale and translation 0.1, up to 3 black
  rectangles of up to 0.3 of the side.
"""

from __future__ import annotations

import functools
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import jax
import ml_collections
import numpy as np

from landmark_ssl import augment
from landmark_ssl import input_pipeline
from landmark_ssl.bench.noise_builder import Bench300w

_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data dir holding (or receiving) blocks; "
    "default: a temporary directory.")
_STEPS = flags.DEFINE_integer("steps", 60, "Batches timed per measurement.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_THREADS = flags.DEFINE_integer("read_threads", 2, "grain read threads.")


def measure(loader: input_pipeline.TrainLoader, aug_config: dict,
            steps: int) -> dict:
  """images/s of the jitted augmentation, of the loader, and of both."""
  cpu = jax.devices("cpu")[0]
  run = jax.jit(functools.partial(augment.augment, aug_config=aug_config))
  batch_size = loader.local_batch_size
  keys = jax.random.split(jax.random.PRNGKey(0), steps + 1)
  result = {}
  with jax.default_device(cpu):
    batch = jax.device_put(loader.get_batch(0), cpu)
    jax.block_until_ready(run(keys[0], batch))  # compile
    start = time.perf_counter()
    for k in keys[1:]:
      out = run(k, batch)
    jax.block_until_ready(out)
    result["augment"] = steps * batch_size / (time.perf_counter() - start)

    it = loader.iterate(0)
    next(it)  # threads started, first batch read
    start = time.perf_counter()
    for _ in range(steps):
      next(it)
    result["loader"] = steps * batch_size / (time.perf_counter() - start)
    it.close()

    it = loader.iterate(steps + 1)
    jax.block_until_ready(run(keys[0], jax.device_put(next(it), cpu)))
    start = time.perf_counter()
    for k in keys[1:]:
      out = run(k, jax.device_put(next(it), cpu))
      jax.block_until_ready(out)
    result["loader+augment"] = steps * batch_size / (time.perf_counter() - start)
    it.close()
  return result


def _data_config(**kw) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      dict(data_dir=None, labeled_share=0.25, eval_batch_size=100,
           train_split="train", prefetch_batches=4), **kw))


def main(argv: Sequence[str]) -> None:
  del argv
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    data_dir = _DATA_DIR.value or tmp
    builder = Bench300w(data_dir=tmp, file_format="array_record")
    builder.download_and_prepare()
    for where, mib in (("memory", input_pipeline.DEFAULT_CACHE_MIB),
                       ("files", 0)):
      cfg = _data_config(name="blocks", data_dir=data_dir,
                         labeled_fraction=0.05, batch_size=_BATCH.value,
                         read_threads=_THREADS.value, cache_mib=mib)
      labeled = input_pipeline.select_labeled(cfg, 0)
      blocks = input_pipeline.TrainLoader(cfg, 0, labeled, 0, 1)
      results[f"blocks, {where}"] = measure(
          blocks, dict(rotation=20.0, scale=0.1, translation=0.1),
          _STEPS.value)
      cfg = _data_config(name="300w-sized", data_dir=tmp, labeled_fraction=1.0,
                         batch_size=_BATCH.value, read_threads=_THREADS.value,
                         cache_mib=mib)
      faces = input_pipeline.TrainLoader(
          cfg, 0, np.arange(Bench300w.NUM_TRAIN), 0, 1, dataset=builder)
      results[f"300w-sized, {where}"] = measure(
          faces, dict(rotation=30.0, scale=0.1, translation=0.1,
                      black_rectangles=3, rectangle_size=0.3), _STEPS.value)

  print(f"batch {_BATCH.value}, {_STEPS.value} steps, read_threads "
        f"{_THREADS.value}, {jax.device_count('cpu')} CPU device(s):")
  for name, res in results.items():
    print(f"  {name:19s} " + "  ".join(f"{k} {v:7.0f} images/s"
                                        for k, v in res.items()))


if __name__ == "__main__":
  app.run(main)
