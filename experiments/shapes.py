r"""Shapes (paper Sec. 4.1): landmarks learned from class labels alone.

60x60 images with one triangle and one square (white on black, random
size, place and rotation); the class is which shape is nearer the top-left
corner; K = 2 landmarks. The model is trained with the class cost only
(costs ``C``); the paper reports 99% class accuracy and that landmark 1
lands on the triangle and landmark 2 on the square.

  python -m landmark_ssl.main --config=experiments/shapes.py --workdir=/tmp/shapes

| setting | value | source |
| --- | --- | --- |
| landmark net | 6 conv 7x7 + 2 conv 1x1, 16 maps | Sec. 4.1 |
| beta (soft-argmax) | 1.0 | Sec. 4.1 |
| classifier | FC 40, 2 | Sec. 4.1 |
| alpha | 1.0 | ours (the only cost; scales the learning rate only) |
| lambda (weight decay) | 1e-5 | ours (as the other experiments) |
| dropout | 0.0 | ours (the paper names none for Shapes) |
| augmentation | none | Sec. 4.1 |
| ELT ranges | rotation 180 deg, scale 0.1, translation 0.1 | ours, as Blocks (unused: costs C) |
| optimiser, learning rate | Adam, 1e-3 | ours |
| batch | 64 | ours |
| epochs, patience (evaluations, one per epoch) | 100, 20 (early stopping on validation class accuracy: costs C) | ours |
| labeled_fraction | 1.0 | unused: costs C has no landmark term |
"""

from landmark_ssl import configs

MODELS = {"seq_mt": ("C",)}
DEFAULT = configs.Choice(model="seq_mt", costs="C")
# What the dataset provides (not config settings): for tests and docs.
IMAGE_SHAPE = (60, 60, 1)
NUM_LANDMARKS = 2
CLASSES = {"label": 2}


def get_config(arg=None):
  choice = configs.parse_arg(arg, MODELS, DEFAULT, "shapes")
  c = configs.base_config()
  c.costs = choice.costs
  c.data.name = "shapes"
  c.data.labeled_fraction = 1.0
  c.data.class_heads = ("label",)
  c.model.update(dict(name="seq_mt", kernel_sizes=(7,) * 6 + (1, 1),
                      features=16, beta=1.0, classifier_hidden=(40,),
                      dropout=0.0, **configs.MODEL_DEFAULTS["seq_mt"]))
  c.loss.alpha = 1.0
  c.loss.gamma = 1.0
  c.loss.weight_decay = 1e-5
  c.loss.elt.rotation = 180.0
  c.loss.elt.scale = 0.1
  c.loss.elt.translation = 0.1
  c.train.max_epochs = 100
  c.train.patience = 20
  c.eval.normalizer = "pixels"
  if choice.quick:
    configs.make_quick(c)
    c.data.name = "shapes/small"  # the builder's 150-images-per-split config
  c.lock()
  return c


def sweep(seeds=configs.SEEDS):
  """Sec. 4.1: Seq-MT trained on class labels only, over seeds."""
  return configs.table_runs("shapes", MODELS, seeds)
