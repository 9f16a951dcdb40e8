r"""Your own data: a dataset built with ``--dataset=coco_keypoints --name=<name>``.

  python -m landmark_ssl.build_data --dataset=coco_keypoints --name=mydata \
      --manual_dir=<images> --annotations=<file.json> [--classes=<file.csv>]
  python -m landmark_ssl.main --config=experiments/custom.py \
      --config.data.name=mydata --workdir=runs/mydata

Nothing about the data is written here: the image size, the number of
landmarks K, the class heads and their sizes come from the built dataset's
info when the run starts (``input_pipeline.get_dataset_info``). The class
heads are every class feature of the dataset (``data.class_heads = ('*',)``,
resolved by ``input_pipeline.with_class_heads``); name some of them to use
only those (``--config.data.class_heads="('species',)"``). A dataset without
class features trains with ``costs=L+T`` (``--config=experiments/custom.py:costs=L+T``).

The labelled images are the data's: the examples with labelled keypoints
(``has_landmarks``); ``labeled_fraction`` 1.0 keeps all of them, a smaller
value keeps that fraction of them (to simulate fewer labels). The others
train the ELT and class costs.

Settings (the paper's HGR1 settings, its 64x64 grey natural-image
experiment; tune them on your validation split):

| setting | value |
| --- | --- |
| model | Seq-MT, 6 conv 9x9 with 64 maps, classifier FC 256, 256, dropout 0.5 |
| costs | L+T+C |
| landmark-term weight, alpha, beta, lambda, gamma | 0.001, 1, 0.3, 1e-5, 0.5 (HGR1, Sec. 4.3) |
| augmentation and ELT ranges | rotation 20 deg, scale 0.1, translation 0.1 |
| optimiser | Adam 1e-3, batch 64, labeled_share 0.25 |
| epochs, patience | 200, 50 evaluations (one per epoch) |
| normaliser | 'dataset' (the builder's: the box diagonal, or --normalizer keypoints) |

The config argument takes ``model=`` (``seq_mt``, ``comm_mt``,
``heatmap_mt``), ``costs=`` and ``quick`` as every experiment does.
"""

from landmark_ssl import configs

MODELS = {
    "seq_mt": ("L", "L+C", "L+T", "L+T+C"),
    "comm_mt": ("L", "L+C", "L+T", "L+T+C"),
    "heatmap_mt": ("L", "L+C"),
}
DEFAULT = configs.Choice(model="seq_mt", costs="L+T+C")

_KERNELS = (9,) * 6
_FEATURES = 64
_HIDDEN = (256, 256)
_DROPOUT = 0.5


def get_config(arg=None):
  choice = configs.parse_arg(arg, MODELS, DEFAULT, "custom")
  c = configs.base_config()
  c.costs = choice.costs
  c.data.name = ""  # --config.data.name=<the --name of your build>
  c.data.labeled_fraction = 1.0  # all the data's labelled examples
  c.data.class_heads = ("*",)  # every class feature of the dataset
  c.augment.rotation = 20.0
  c.augment.scale = 0.1
  c.augment.translation = 0.1
  c.model.update(configs.paper_model(
      choice.model, _KERNELS, _FEATURES, beta=0.3, hidden=_HIDDEN,
      dropout=_DROPOUT))
  c.loss.landmark_weight = 0.001
  c.loss.alpha = 1.0
  c.loss.gamma = 0.5
  c.loss.weight_decay = 1e-5
  c.loss.elt.rotation = 20.0
  c.loss.elt.scale = 0.1
  c.loss.elt.translation = 0.1
  c.train.max_epochs = 200.0
  c.train.patience = 50
  c.eval.normalizer = "dataset"
  if choice.quick:
    configs.make_quick(c)
  c.lock()
  return c


def sweep(seeds=configs.SEEDS):
  """Seq-MT with each of L, L+T, L+C, L+T+C on all the labelled examples,
  one run per seed (the C rows need a dataset with class features). The
  dataset is the sweep's override: ``--override=data.name=<name>``."""
  return [{"name": configs.run_name("seq_mt", costs, 1.0, seed),
           "config_arg": f"model=seq_mt,costs={costs}",
           "overrides": {"seed": int(seed)}}
          for costs in MODELS["seq_mt"] for seed in seeds]
