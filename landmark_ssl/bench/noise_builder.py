"""A throwaway TFDS dataset of noise shaped like the 300W crops (benchmarks).

It lives in its own module because TFDS needs a builder's module to belong
to a package (``python -m`` runs the benchmark itself as ``__main__``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_datasets as tfds


class Bench300w(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Noise images with the shapes of the 300W crops (benchmarks only)."""

  VERSION = tfds.core.Version("1.0.0")
  NUM_TRAIN = 2834

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(80, 80, 1), dtype=np.uint8),
            "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
            "visible": tfds.features.Tensor(shape=(68,), dtype=np.float32),
            "normalizer": tfds.features.Tensor(shape=(), dtype=np.float32),
            "crop": tfds.features.Tensor(shape=(2, 3), dtype=np.float32),
            "id": tfds.features.Text(),
        }), disable_shuffling=True)

  def _split_generators(self, dl_manager: Any) -> dict:
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i in range(self.NUM_TRAIN):
      yield i, {
          "image": rng.integers(0, 256, (80, 80, 1), dtype=np.uint8),
          "landmarks": rng.uniform(10, 70, (68, 2)).astype(np.float32),
          "visible": np.ones(68, np.float32),
          "normalizer": np.float32(30.0),
          "crop": np.eye(2, 3, dtype=np.float32),
          "id": f"noise_{i}",
      }
