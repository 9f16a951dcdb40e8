"""What every ``experiments/<name>.py`` shares: the config layout with its
defaults, the parsing of the ``--config=<file>:<arg>`` argument, the
``quick`` shrink, and the list of runs that make up a paper table.

An experiment file composes these; it holds its own numbers (the paper's
architecture and hyper-parameters, with their sources) and nothing else.

The config argument is comma-separated ``key=value`` pairs and flags, e.g.
``model=seq_mt,costs=L+T+C,quick``:

* ``model``: a row of the experiment's table (``seq_mt``, ``comm_mt``,
  ``heatmap_mt``, and on 300W ``rcn`` / ``rcn_plus``);
* ``costs``: ``L``, ``L+C``, ``L+T``, ``L+T+C`` (Shapes: ``C``);
* ``quick``: a small net of the same kind, 30 epochs, batches of 32, and for
  the synthetic datasets their ``small`` builder config (150 images per
  split): a run takes well under a minute on a laptop CPU. Blocks' quick
  variant, the README's quick start, trains longer so that it visibly
  learns (about 2 minutes; ``experiments/blocks.py``).

Run names (one workdir per run) are built from the settings:
``<model>_<costs>_f<fraction>_s<seed>``, e.g. ``seq_mt_L+T+C_f0.05_s0``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os
import types
from typing import Any, Dict, List, Mapping, Sequence

from ml_collections import config_dict

from landmark_ssl import paper_results

# The cost terms a run may switch on (``config.costs``): L landmarks, C
# classes, T ELT.
VALID_COSTS = ("L", "L+C", "L+T", "L+T+C", "C")


def cost_terms(costs: str) -> frozenset[str]:
  """``'L+T+C'`` -> ``{'L', 'T', 'C'}``; rejects anything not in
  :data:`VALID_COSTS`. The one place a costs string is read."""
  if costs not in VALID_COSTS:
    raise ValueError(f"config.costs={costs!r} is not one of {list(VALID_COSTS)} "
                     "(L: landmarks, C: classes, T: ELT).")
  return frozenset(costs.split("+"))


def selection_rule(terms: frozenset) -> tuple[str, str]:
  """``(metric, mode)`` watched by early stopping and best-checkpoint
  keeping: the landmark error with landmark labels, else class accuracy."""
  return ("landmark_error", "min") if "L" in terms else ("accuracy", "max")


SEEDS = (0, 1, 2, 3, 4)  # the paper averages over five seeds (Table 1, fn. 5)
_KEYS = ("model", "costs")
_FLAGS = ("quick",)
# Settings of a model that every experiment's config carries (so that
# ``--config.model.<key>=`` can set them) at the model class's default, which
# is also what a stored config without them ran with (:func:`with_defaults`).
# ``conv_method``: 'auto', 'direct' (lax.conv) or 'fft' (models.convolution).
MODEL_DEFAULTS = {
    "seq_mt": {"conv_method": "auto"},
    "comm_mt": {"conv_method": "auto"},
    "heatmap_mt": {"conv_method": "auto"},
}


@dataclasses.dataclass(frozen=True)
class Choice:
  """A parsed config argument."""
  model: str
  costs: str
  quick: bool = False


def parse_arg(arg: str | None, allowed: Mapping[str, Sequence[str]],
              default: Choice, experiment: str) -> Choice:
  """Parses ``'model=seq_mt,costs=L+T,quick'``.

  Args:
    arg: the text after ``:`` in ``--config=<file>:<arg>`` (``None`` or empty:
      ``default``).
    allowed: ``{model: costs it may be trained with}`` for this experiment.
    default: the paper's main setting of this experiment.
    experiment: the experiment's name, for error messages.

  Raises:
    ValueError: naming the bad key or value and the valid ones.
  """
  values = {"model": default.model, "costs": default.costs}
  quick = False
  seen = set()
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    key, sep, val = item.partition("=")
    key, val = key.strip(), val.strip()
    if key in seen:
      raise ValueError(f"Config argument {key!r} given twice in {arg!r}.")
    seen.add(key)
    if not sep:
      if key not in _FLAGS:
        raise ValueError(
            f"Unknown flag {key!r} in the config argument {arg!r} of "
            f"experiments/{experiment}.py; flags: {list(_FLAGS)}; keys "
            f"(key=value): {list(_KEYS)}.")
      quick = True
      continue
    if key not in _KEYS:
      raise ValueError(
          f"Unknown key {key!r} in the config argument {arg!r} of "
          f"experiments/{experiment}.py; valid keys: {list(_KEYS)} "
          f"(and the flag 'quick').")
    values[key] = val
  if values["model"] not in allowed:
    raise ValueError(
        f"model={values['model']!r} is not available for experiments/"
        f"{experiment}.py; choose one of {list(allowed)}.")
  if values["costs"] not in allowed[values["model"]]:
    raise ValueError(
        f"costs={values['costs']!r} is not available for model="
        f"{values['model']} in experiments/{experiment}.py; choose one of "
        f"{list(allowed[values['model']])}.")
  return Choice(values["model"], values["costs"], quick)


def base_config() -> config_dict.ConfigDict:
  """The layout every experiment fills in, with the values experiments share.

  Settings only: numbers that follow from the data (steps per epoch, K,
  classes per head, image size) are computed at run time. Optional strings
  are typed placeholders so that ``--config.data.data_dir=/x`` works.
  The experiment file overrides what differs and then locks the config.
  """
  c = config_dict.ConfigDict()
  c.seed = 0
  c.costs = "L+T+C"

  c.data = config_dict.ConfigDict()
  c.data.name = ""
  c.data.data_dir = config_dict.placeholder(str)  # None: TFDS default
  c.data.manual_dir = config_dict.placeholder(str)  # real datasets' files
  c.data.labeled_fraction = 1.0
  # Our choice (the paper is silent on batch composition): at least this
  # share of every training batch comes from the labelled pool, the rest
  # from all training images; without it a 1% run would see a labelled
  # image in one batch out of two.
  c.data.labeled_share = 0.25
  c.data.batch_size = 64  # our choice; the paper is silent
  c.data.eval_batch_size = 256
  # Splits up to this many MiB decoded are held in memory (read once per
  # process; the same batches); 0 = decode every batch from the files.
  c.data.cache_mib = 1024
  c.data.class_heads = ()  # class features feeding classifier heads (with C)
  c.data.train_split = "train"
  c.data.eval_split = "validation"
  c.data.test_splits = ("test",)

  # Training-time augmentation (geometry.random_affine ranges layout):
  # rotation in degrees, scale and translation as fractions; 0 = off.
  c.augment = config_dict.ConfigDict()
  c.augment.rotation = 0.0
  c.augment.scale = 0.0
  c.augment.translation = 0.0
  # Random black rectangles (occlusion): up to this many per image (the
  # count is uniform in {0, ..., black_rectangles}), sides up to
  # rectangle_size of the image side; 0 = off.
  c.augment.black_rectangles = 0
  c.augment.rectangle_size = 0.0

  c.model = config_dict.ConfigDict()  # {name, attributes of the model class}

  c.loss = config_dict.ConfigDict()
  # Weight of the landmark term (eq. 3: the weight stands on the landmark
  # term and the class NLL's is 1; experiments say which reading they use).
  c.loss.landmark_weight = 1.0
  # The landmark term's mean: 'labeled' (over the images with landmark
  # labels) or 'all' (eq. 3 as written: over all images of the batch, zero
  # for those without labels). Costs L alone read only labelled rows, where
  # both are the same.
  c.loss.landmark_mean = "labeled"
  c.loss.alpha = 1.0  # weight of the class NLL (eq. 3); used with costs C
  c.loss.gamma = 1.0  # weight of the ELT cost (eq. 4); used with costs T
  c.loss.weight_decay = 0.0  # lambda of eq. 3, on kernels
  c.loss.elt_on = "unlabeled"  # 'unlabeled' (the paper's default) or 'all'
  # ELT branch whose gradient is stopped: 'none' (the paper), 'original' or
  # 'warped' (losses.equivariance_loss).
  c.loss.elt_stop_gradient = "none"
  c.loss.elt = config_dict.ConfigDict()  # ELT transform ranges
  c.loss.elt.rotation = 0.0
  c.loss.elt.scale = 0.0
  c.loss.elt.translation = 0.0

  c.optim = config_dict.ConfigDict()  # Adam (the paper, Sec. 4.4)
  c.optim.learning_rate = 1e-3  # our choice (Adam's usual); the paper is silent
  c.optim.schedule = "constant"  # or 'cosine' (decay to 0 over max_epochs)
  c.optim.grad_clip_norm = 0.0  # 0 = off

  c.train = config_dict.ConfigDict()
  c.train.max_epochs = 100.0  # float, so that fractional overrides work
  c.train.eval_every_epochs = 1.0
  # Evaluations without a better validation metric before stopping (0 =
  # never). The metric: validation landmark error, or class accuracy for
  # costs without L (train.selection_rule).
  c.train.patience = 50
  c.train.log_every_steps = 50
  c.train.checkpoint_every_steps = 0  # 0 = at every evaluation only

  c.eval = config_dict.ConfigDict()
  # 'pixels', 'wrist', 'eye_centers', 'outer_eye_corners', 'inter_pupil' or
  # 'dataset' (the builder's stored normaliser): evaluation.NORMALIZERS.
  c.eval.normalizer = "pixels"
  return c


def paper_model(name: str, kernel_sizes, features: int, beta: float,
                hidden=(256, 256), dropout: float = 0.25) -> dict:
  """``config.model`` of a table row, sized like the experiment's Seq-MT.

  Seq-MT is the paper's net of the experiment; the baselines get the same
  kernel size and width (our choice: the paper gives their figures, not
  their sizes): Comm-MT (Fig. 6) five convs, pool, one conv, pool, the
  shared FC trunk ``hidden`` and a sigmoid class output (footnote 7);
  Heatmap-MT (Fig. 8) Seq-MT's landmark net and a classifier of two
  (pool, 3x3 conv, 16 maps) stages before the FC layers ``hidden``.
  """
  if name == "seq_mt":
    return dict(name="seq_mt", kernel_sizes=tuple(kernel_sizes),
                features=features, beta=beta, classifier_hidden=tuple(hidden),
                dropout=dropout, **MODEL_DEFAULTS[name])
  if name == "comm_mt":
    return dict(name="comm_mt", kernel_size=max(kernel_sizes),
                features=features, convs_before_pool=5, convs_after_pool=1,
                hidden=tuple(hidden), dropout=dropout,
                class_activation="sigmoid", **MODEL_DEFAULTS[name])
  if name == "heatmap_mt":
    return dict(name="heatmap_mt", kernel_sizes=tuple(kernel_sizes),
                features=features, classifier_convs=(16, 16),
                classifier_hidden=tuple(hidden), dropout=dropout,
                **MODEL_DEFAULTS[name])
  raise ValueError(f"paper_model: no table row {name!r}; rows are seq_mt, "
                   "comm_mt, heatmap_mt.")


# The quick variant: every model shrunk to a few small layers.
_QUICK_MODELS = {
    # beta 1: a tiny net cannot grow the peaky maps a small beta needs.
    "seq_mt": dict(kernel_sizes=(7, 7, 7, 1), features=8,
                   classifier_hidden=(32,), beta=1.0),
    "comm_mt": dict(kernel_size=3, features=4, convs_before_pool=1,
                    convs_after_pool=1, hidden=(32,)),
    "heatmap_mt": dict(kernel_sizes=(7, 7, 7, 1), features=8,
                       classifier_convs=(4,), classifier_hidden=(32,)),
    "rcn": dict(down_features=((8,),) * 3, down_kernel_sizes=((3,),) * 3,
                up_features=((8,),) * 3, up_kernel_sizes=((3,),) * 3),
}


def make_quick(c: config_dict.ConfigDict) -> None:
  """Shrinks ``c`` in place to run in a few minutes on a laptop CPU: a small
  net of the same kind, few epochs, small batches. The costs and the loss
  weights stay those of the experiment (synthetic experiments also switch
  to their ``small`` dataset)."""
  for key, val in _QUICK_MODELS[c.model.name].items():
    setattr(c.model, key, val)
  c.data.batch_size = 32
  c.data.eval_batch_size = 64
  c.train.max_epochs = 30.0
  c.train.patience = 10
  c.train.log_every_steps = 10


def syntax_error_message(error: SyntaxError) -> str:
  """A config or experiment file's syntax error as one message: the file,
  line and column, the line itself, and the fix."""
  where = f"{error.filename}, line {error.lineno}"
  if error.offset:
    where += f", column {error.offset}"
  text = (error.text or "").rstrip("\n")
  marker = ("\n    " + text + "\n    " + " " * max((error.offset or 1) - 1, 0)
            + "^") if text.strip() else ""
  return (f"{where}: {error.msg} (a Python syntax error in the config file)."
          f"{marker}\nFix that line of {error.filename} and run the command "
          "again.")


def load_experiment(path: str) -> types.ModuleType:
  """Loads an experiment file (``experiments/blocks.py``) as a module, the
  way ``--config=<path>`` does: by path, whatever ``sys.path`` holds."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"Experiment file {path!r} not found; pass the path of one of the "
        "experiments/*.py files, e.g. experiments/blocks.py.")
  name = "experiment_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ValueError(syntax_error_message(e)) from None
  for attr in ("get_config", "sweep"):
    if not callable(getattr(module, attr, None)):
      raise ValueError(f"Experiment file {path!r} has no {attr}() function; "
                       "every experiments/*.py defines get_config(arg) and "
                       "sweep(seeds).")
  return module


def flat_items(node: Mapping, prefix: str = ""):
  """Yields ``(dotted key, value)`` for every leaf of a nested mapping (a
  ``ConfigDict.to_dict()`` or a run's stored config): ``('model.beta',
  1.0)``, the keys ``--config.<key>=`` takes; an empty mapping is a
  leaf."""
  for k, v in node.items():
    if isinstance(v, Mapping) and v:
      yield from flat_items(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}", v


def with_defaults(stored: Mapping) -> dict:
  """A run's stored config (``config.json``) with every key of
  :func:`base_config` it lacks added at its default.

  Keys are only ever added to ``base_config`` with a default that keeps the
  earlier behaviour, so a run written before a key existed ran with that
  default: with this, such a run still resumes, evaluates and pools with
  newer runs of the same settings. Keys the run has are kept as stored;
  defaults that are empty mappings (``model``) are not added inside, except
  the :data:`MODEL_DEFAULTS` of the model it names.
  """
  def merge(node, defaults):
    out = dict(node)
    for k, v in defaults.items():
      if k not in out:
        out[k] = copy.deepcopy(v)
      elif isinstance(v, Mapping) and isinstance(out[k], Mapping):
        out[k] = merge(out[k], v)
    return out
  out = merge(stored, base_config().to_dict())
  if isinstance(out.get("model"), Mapping):
    out["model"] = merge(out["model"],
                         MODEL_DEFAULTS.get(out["model"].get("name"), {}))
  return out


def run_name(model: str, costs: str, fraction: float, seed: int) -> str:
  """``seq_mt_L+T+C_f0.05_s0``: a run's directory name."""
  return f"{model}_{costs}_f{fraction:g}_s{seed}"


def row_model(model_config: Mapping) -> str:
  """The table row of a model config: its name, except that ``rcn`` with the
  soft-argmax is ``rcn_plus`` (RCN+)."""
  name = model_config["name"]
  if name == "rcn" and model_config.get("soft_argmax", True):
    return "rcn_plus"
  return name


def config_differences(stored: Mapping, given: Mapping) -> List[str]:
  """Human-readable differences between two config dicts, one per key.

  A key of :func:`base_config` that either lacks (a run written before the
  key existed, a hand-built config) counts as its default
  (:func:`with_defaults`).
  """
  a, b = (dict(flat_items(with_defaults(c))) for c in (stored, given))
  missing = object()
  diffs = []
  for key in sorted(set(a) | set(b)):
    old, new = a.get(key, missing), b.get(key, missing)
    if old != new:
      show = lambda v: "(absent)" if v is missing else json.dumps(v)
      diffs.append(f"{key}: workdir has {show(old)}, given {show(new)}")
  return diffs


def table_runs(experiment: str, models: Sequence[str],
               seeds: Sequence[int] = SEEDS,
               column_settings: Mapping[float, Mapping[str, Any]] | None = None
               ) -> List[Dict]:
  """The runs of the paper's table for ``experiment``, restricted to the row
  ``models`` an experiment file offers: one per reported cell (model, costs,
  label fraction) and seed, in the paper's row order.

  Each run is ``{"name", "config_arg", "overrides"}``: train it with
  ``--config=<experiment file>:<config_arg>`` plus
  ``--config.<key>=<value>`` for each override. ``column_settings`` maps a
  label fraction to settings that every run of that column gets on top of
  the experiment's config (e.g. a longer schedule where the default one
  ends still improving): part of the table's protocol, so the report
  compares a run against them too (``analysis.runs.protocol_differences``).
  """
  column_settings = dict(column_settings or {})
  unknown = sorted(set(column_settings) - {
      f for _, _, f in paper_results.landmark_cells(experiment)})
  if unknown:
    raise ValueError(f"column_settings names label fractions {unknown} that "
                     f"{experiment}'s table has no column for.")
  runs = []
  for model, costs, fraction in paper_results.landmark_cells(experiment):
    if model not in models:
      continue
    for seed in seeds:
      overrides = {"data.labeled_fraction": fraction, "seed": int(seed)}
      overrides.update(column_settings.get(fraction, {}))
      runs.append({
          "name": run_name(model, costs, fraction, seed),
          "config_arg": f"model={model},costs={costs}",
          "overrides": overrides,
      })
  return runs
