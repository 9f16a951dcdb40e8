r"""300W with Recombinator Networks (paper Sec. 4.5, Tables 4 and 5, Fig. 15):
RCN+ (soft-argmax, trainable with ELT) and the original softmax RCN [12].

Data, augmentation, ELT ranges and evaluation are those of the300w.py
(ELT on all images: Sec. 4.5).

  python -m landmark_ssl.main --config=experiments/the300w_rcn.py:model=rcn_plus,costs=L+T \
      --config.data.manual_dir=/path/to/300w --workdir=/tmp/300w_rcn

Hyper-parameters, (alpha, beta, lambda, gamma) = (1.0, 0.5, 0, 1.0) (Sec. 4.5):

| setting | value | source |
| --- | --- | --- |
| alpha | 1.0 | Sec. 4.5 (unused: no class labels) |
| beta (soft-argmax, RCN+) | 0.5 | Sec. 4.5 |
| lambda (weight decay) | 0 | Sec. 4.5 |
| gamma (ELT weight) | 1.0 | Sec. 4.5 |
| RCN levels | 4 resolutions, 64 maps, 3x3 convs, 2 per level and path | ours: Fig. 15's numbers are not in the text |
| RCN (plain) | same net, pixel softmax, argmax at test; costs L only | RCN [12] as in Table 4 |
| the rest | as the300w.py | |
"""

import os

from landmark_ssl import configs

the300w = configs.load_experiment(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "the300w.py"))

# RCN's argmax has no gradient: ELT needs RCN+.
MODELS = {
    "rcn_plus": ("L", "L+T"),
    "rcn": ("L",),
}
DEFAULT = configs.Choice(model="rcn_plus", costs="L+T")
IMAGE_SHAPE = the300w.IMAGE_SHAPE
NUM_LANDMARKS = the300w.NUM_LANDMARKS
CLASSES = the300w.CLASSES


def get_config(arg=None):
  choice = configs.parse_arg(arg, MODELS, DEFAULT, "the300w_rcn")
  c = configs.base_config()
  c.costs = choice.costs
  the300w.set_dataset(c)
  c.model.update(dict(name="rcn", features=(64, 64, 64, 64),
                      kernel_sizes=(3, 3, 3, 3), convs_per_level=2,
                      soft_argmax=choice.model == "rcn_plus", beta=0.5))
  c.loss.alpha = 1.0
  c.loss.gamma = 1.0
  c.loss.weight_decay = 0.0
  if choice.quick:
    configs.make_quick(c)
  c.lock()
  return c


def sweep(seeds=configs.SEEDS):
  """Tables 4 and 5: RCN+ (L), (L+T) x 5 label fractions, and RCN (L) at
  100% (the number Table 4 quotes from [12]), x seeds."""
  return configs.table_runs("the300w", MODELS, seeds)
