"""A tiny run config for the tests (not an experiment).

``get_config('fake')`` (default) trains on the in-memory fixture of
``tests/fake_pipeline.py`` (16x16 blobs, K=2); ``get_config('blocks')`` on
the ``blocks/small`` TFDS dataset (150 60x60 images per split, built on
first use in ``config.data.data_dir``).
"""

import ml_collections


def get_config(arg: str = "fake"):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.costs = "L+T+C"
  c.data = ml_collections.ConfigDict(dict(
      # placeholder(str): None, yet overridable with --config.data.data_dir=...
      name="fake", data_dir=ml_collections.config_dict.placeholder(str),
      manual_dir=ml_collections.config_dict.placeholder(str),
      labeled_fraction=0.5,
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
      max_epochs=8.0, eval_every_epochs=2.0, patience=3, log_every_steps=5,
      checkpoint_every_steps=3))
  c.eval = ml_collections.ConfigDict(dict(normalizer="dataset"))
  if arg == "blocks":
    c.data.update(dict(name="blocks/small", labeled_fraction=0.2,
                       labeled_share=0.5, batch_size=24, eval_batch_size=40,
                       read_threads=1, prefetch_batches=2))
    c.model.update(dict(kernel_sizes=(7, 7, 7, 1), features=8,
                        classifier_hidden=(32,)))
    c.augment.update(dict(rotation=10.0, scale=0.05, translation=0.05))
    c.optim.learning_rate = 3e-3
    c.train.update(dict(max_epochs=10.0, eval_every_epochs=2.0, patience=10,
                        log_every_steps=10, checkpoint_every_steps=0))
    c.eval.normalizer = "pixels"
  elif arg != "fake":
    raise ValueError(f"tiny_config: unknown arg {arg!r}; use 'fake' or 'blocks'.")
  return c
