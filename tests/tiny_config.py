"""A tiny run config for the tests (not an experiment).

``get_config('fake')`` (default) trains on the in-memory fixture of
``tests/fake_pipeline.py`` (16x16 blobs, K=2); ``get_config('blocks')`` on
the ``blocks/small`` TFDS dataset (built on first use).
"""

import ml_collections


def get_config(arg: str = "fake"):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.costs = "L+T+C"
  c.data = ml_collections.ConfigDict(dict(
      name="fake", data_dir=None, manual_dir=None, labeled_fraction=0.5,
      labeled_share=0.5, batch_size=16, eval_batch_size=16,
      class_heads=("label",), train_split="train", eval_split="validation",
      test_splits=("test",)))
  c.augment = ml_collections.ConfigDict(dict(
      rotation=5.0, scale=0.05, translation=0.05))
  c.model = ml_collections.ConfigDict(dict(
      name="seq_mt", kernel_sizes=(5, 5, 1), features=8,
      classifier_hidden=(16,), dropout=0.25))
  c.loss = ml_collections.ConfigDict(dict(
      alpha=0.1, gamma=0.1, weight_decay=1e-5, elt_on="unlabeled",
      elt=dict(rotation=10.0, scale=0.05, translation=0.05)))
  c.optim = ml_collections.ConfigDict(dict(
      learning_rate=1e-2, schedule="constant", grad_clip_norm=0.0))
  c.train = ml_collections.ConfigDict(dict(
      max_epochs=8, eval_every_epochs=2, patience=3, log_every_steps=5,
      checkpoint_every_steps=3))
  c.eval = ml_collections.ConfigDict(dict(normalizer="dataset"))
  if arg == "blocks":
    c.data.name = "blocks/small"
    raise NotImplementedError  # filled in once the pipeline is merged
  elif arg != "fake":
    raise ValueError(f"tiny_config: unknown arg {arg!r}; use 'fake' or 'blocks'.")
  return c
