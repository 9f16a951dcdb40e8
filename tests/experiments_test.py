"""The experiment configs: every choice builds a config whose model builds;
bad arguments fail with the valid names; every setting can be overridden;
the sweeps list exactly the paper's cells."""

import copy
import dataclasses
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from ml_collections import config_dict
from ml_collections import config_flags

from landmark_ssl import configs, losses, models, paper_results

pytestmark = pytest.mark.filterwarnings("ignore:the load_module")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("shapes", "blocks", "hgr1", "multipie", "the300w", "the300w_rcn")


def path(name):
  return os.path.join(ROOT, "experiments", f"{name}.py")


EXP = {name: configs.load_experiment(path(name)) for name in NAMES}
CHOICES = [(name, model, costs, quick) for name in NAMES
           for model, costs_list in EXP[name].MODELS.items()
           for costs in costs_list for quick in (False, True)]


def test_every_experiment_file_is_covered():
  files = {os.path.basename(p)[:-3] for p in glob.glob(path("*"))}
  # custom.py (your own data) has no shapes of its own: custom_experiment_test.
  assert files == set(NAMES) | {"custom"}


def _build_model(exp, config):
  heads = exp.CLASSES if "C" in config.costs else {}
  return models.create_model(config.model, exp.NUM_LANDMARKS, heads), heads


@pytest.mark.parametrize("name,model,costs,quick", CHOICES)
def test_config_and_model_build(name, model, costs, quick):
  exp = EXP[name]
  arg = f"model={model},costs={costs}" + (",quick" if quick else "")
  config = exp.get_config(arg)
  assert config.is_locked
  assert config.costs == costs
  assert configs.row_model(config.model) == model
  assert config.data.name.partition("/")[0] == name.replace("_rcn", "")
  assert set(config.data.class_heads) == set(exp.CLASSES)
  net, heads = _build_model(exp, config)
  images = jax.random.uniform(jax.random.PRNGKey(len(arg)), (2,) + exp.IMAGE_SHAPE)
  # Run it for real for the quick variant of the main setting of each
  # experiment; everywhere else shapes only (jax.eval_shape), no compute.
  real = quick and (model, costs) == (exp.DEFAULT.model, exp.DEFAULT.costs)
  if real:
    out = jax.jit(lambda x: net.apply(
        net.init(jax.random.PRNGKey(0), x), x, train=True,
        rngs={"dropout": jax.random.PRNGKey(1)}))(images)
  else:
    out = jax.eval_shape(
        lambda x: net.apply(net.init(jax.random.PRNGKey(0), x), x), images)
  assert out["landmarks"].shape == (2, exp.NUM_LANDMARKS, 2)
  assert {h: v.shape for h, v in out["logits"].items()} == {
      h: (2, n) for h, n in heads.items()}
  if real:
    assert np.all(np.isfinite(np.asarray(out["landmarks"])))


MODEL_CHOICES = sorted({(name, model) for name, model, _, _ in CHOICES})


@pytest.mark.parametrize("name,model", MODEL_CHOICES)
def test_model_defaults_are_in_every_config_and_settable(name, model):
  """``--config.model.conv_method=direct`` (the README's) trains with direct
  convolutions wherever the model has the setting."""
  arg = f"model={model},costs={EXP[name].MODELS[model][0]}"
  config = EXP[name].get_config(arg)
  defaults = configs.MODEL_DEFAULTS.get(config.model.name, {})
  for key, value in defaults.items():
    assert config.model[key] == value, key
  argv = ["prog", f"--config={path(name)}:{arg}"]
  if defaults:
    argv.append("--config.model.conv_method=direct")
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=argv,
                                  lock_config=True)
  fv(argv)
  net, _ = _build_model(EXP[name], fv.config)
  if defaults:
    assert net.conv_method == "direct"


def test_model_defaults_are_the_model_classes_and_fill_old_configs():
  for name, defaults in configs.MODEL_DEFAULTS.items():
    fields = {f.name: f.default
              for f in dataclasses.fields(models.MODELS[name])}
    for key, value in defaults.items():
      assert fields[key] == value, (name, key)
  # A run stored before conv_method was a config key ran with the default:
  # its config, filled in, equals today's.
  today = EXP["blocks"].get_config("model=seq_mt").to_dict()
  old = copy.deepcopy(today)
  del old["model"]["conv_method"]
  assert configs.with_defaults(old) == configs.with_defaults(today)
  direct = copy.deepcopy(today)
  direct["model"]["conv_method"] = "direct"
  assert configs.with_defaults(direct)["model"]["conv_method"] == "direct"
  rcn = EXP["the300w_rcn"].get_config("model=rcn,costs=L").to_dict()
  assert "conv_method" not in configs.with_defaults(rcn)["model"]


def _num_params(exp, config):
  net, _ = _build_model(exp, config)
  images = jax.ShapeDtypeStruct((1,) + exp.IMAGE_SHAPE, np.float32)
  shapes = jax.eval_shape(lambda x: net.init(jax.random.PRNGKey(0), x), images)
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))


def _images_trained_on(config):
  """Epochs times training images per epoch, up to a factor common to a
  quick and a full config: synthetic datasets' sizes come from their
  builder config (``blocks/small``: 150), other datasets count as 1 (the
  quick variant trains on the same data)."""
  from data_builders import synthetic  # pylint: disable=g-import-not-at-top
  sizes = {c.name: c.examples_per_split for c in synthetic.standard_configs()}
  name, _, variant = config.data.name.partition("/")
  per_epoch = sizes[variant or "default"] if name in ("blocks", "shapes") else 1
  return config.train.max_epochs * per_epoch


@pytest.mark.parametrize("name", NAMES)
def test_quick_is_smaller_and_shorter(name):
  exp = EXP[name]
  full, quick = exp.get_config(""), exp.get_config("quick")
  assert _num_params(exp, quick) * 5 < _num_params(exp, full)
  assert _images_trained_on(quick) * 5 < _images_trained_on(full)
  assert (quick.costs, quick.model.name) == (full.costs, full.model.name)


@pytest.mark.parametrize("name,model,costs", [
    ("shapes", "seq_mt", "C"), ("blocks", "seq_mt", "L+T+C"),
    ("hgr1", "seq_mt", "L+T+C"), ("multipie", "seq_mt", "L+T+C"),
    ("the300w", "seq_mt", "L+T"), ("the300w_rcn", "rcn_plus", "L+T")])
def test_empty_arg_is_the_papers_main_setting(name, model, costs):
  for arg in (None, ""):
    config = EXP[name].get_config(arg)
    assert (configs.row_model(config.model), config.costs) == (model, costs)


@pytest.mark.parametrize("arg,match", [
    ("modle=seq_mt", r"valid keys: \['model', 'costs'\]"),
    ("model=seqmt", r"\['seq_mt', 'comm_mt', 'heatmap_mt'\]"),
    ("costs=L+C+T", r"\['L', 'L\+C', 'L\+T', 'L\+T\+C'\]"),
    ("model=heatmap_mt,costs=L+T", r"choose one of \['L', 'L\+C'\]"),
    ("model=seq_mt,model=comm_mt", "given twice"),
    ("fast", r"flags: \['quick'\]"),
    ("model=rcn", r"choose one of"),
])
def test_bad_arguments_name_the_valid_choices(arg, match):
  with pytest.raises(ValueError, match=match):
    EXP["blocks"].get_config(arg)


def test_bad_arguments_of_other_experiments():
  with pytest.raises(ValueError, match=r"\['C'\]"):
    EXP["shapes"].get_config("costs=L")
  with pytest.raises(ValueError, match=r"\['L', 'L\+T'\]"):
    EXP["the300w"].get_config("costs=L+C")  # 300W has no class labels
  with pytest.raises(ValueError, match=r"\['L'\]"):
    EXP["the300w_rcn"].get_config("model=rcn,costs=L+T")  # argmax: no ELT
  with pytest.raises(ValueError, match=r"\['rcn_plus', 'rcn'\]"):
    EXP["the300w_rcn"].get_config("model=seq_mt")


def test_locked_config_takes_overrides_and_rejects_typos():
  config = EXP["blocks"].get_config("model=seq_mt,costs=L")
  config.data.batch_size = 32
  config.data.data_dir = "/tmp/tfds"  # a typed placeholder
  config.model.kernel_sizes = (5, 5, 1)
  assert (config.data.batch_size, config.data.data_dir) == (32, "/tmp/tfds")
  with pytest.raises(AttributeError):
    config.data.batch_sise = 32
  with pytest.raises(TypeError):
    config.data.batch_size = "large"


def _override_text(config, key):
  """A command-line value for ``key`` that differs from its current one."""
  node = config
  *parents, leaf = key.split(".")
  for p in parents:
    node = node[p]
  value, kind = node[leaf], node.get_type(leaf)
  if kind is bool:
    return str(not value), (not value)
  if kind is int:
    return str(value + 3), value + 3
  if kind is float:
    return repr(value + 0.5), value + 0.5
  if kind is str:
    return (value or "") + "x", (value or "") + "x"
  if kind is tuple:
    new = tuple(value) + (value[-1] if value else "a",)
    return str(new), new
  raise AssertionError(f"config.{key} has type {kind}, which the command line "
                       "cannot set")


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_can_be_overridden_on_the_command_line(name):
  config = EXP[name].get_config("")
  flat = []

  def walk(node, prefix):
    for k in node.keys():
      v = node[k]
      if isinstance(v, config_dict.ConfigDict):
        walk(v, f"{prefix}{k}.")
      else:
        flat.append(f"{prefix}{k}")

  walk(config, "")
  assert len(flat) > 30
  argv, want = ["prog", f"--config={path(name)}"], {}
  for key in flat:
    text, value = _override_text(config, key)
    argv.append(f"--config.{key}={text}")
    want[key] = value
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=argv)
  fv(argv)
  got = fv.config
  for key, value in want.items():
    node = got
    for p in key.split("."):
      node = node[p]
    assert node == value, key


# (alpha, beta, lambda, gamma) per experiment and model, as the experiment docstrings read
# the paper (or as chosen on validation, where the config says so); None
# where a model has no beta. The first value is eq. 3's landmark-term weight
# (the class NLL has weight 1).
HYPER = {
    # beta: 1.0 chosen on validation, not the paper's 0.01 (blocks.py).
    ("blocks", "seq_mt"): (1.0, 1.0, 1e-5, 1.0),
    ("hgr1", "seq_mt"): (0.001, 0.3, 1e-5, 0.5),
    ("hgr1", "heatmap_mt"): (0.001, None, 1e-5, 0.5),
    ("multipie", "seq_mt"): (0.001, 0.3, 1e-5, 2.0),
    ("multipie", "comm_mt"): (0.001, None, 1e-5, 2.0),
    ("the300w", "seq_mt"): (1.0, 2.0, 1e-5, 2.0),  # ours: no list for Seq-MT
    ("the300w", "comm_mt"): (0.01, None, 1e-5, 2.0),
    ("the300w", "heatmap_mt"): (0.01, None, 1e-5, 2.0),
    ("the300w_rcn", "rcn_plus"): (1.0, 0.5, 0.0, 1.0),
    ("shapes", "seq_mt"): (1.0, 1.0, 1e-5, 1.0),
}


@pytest.mark.parametrize("name,model", sorted(HYPER))
def test_paper_hyper_parameters(name, model):
  config = EXP[name].get_config("" if name == "shapes" else
                                f"model={model},costs=L")
  weight, beta, lam, gamma = HYPER[(name, model)]
  if name != "shapes":  # Shapes has no landmark term (costs C)
    assert config.loss.landmark_weight == weight
  assert (config.loss.alpha, config.loss.weight_decay, config.loss.gamma) == (
      1.0, lam, gamma)
  assert config.model.get("beta") == beta


def test_elt_and_augmentation_ranges():
  blocks, hgr1, w300 = (EXP[n].get_config("") for n in ("blocks", "hgr1", "the300w"))
  assert blocks.augment.rotation == 0 and blocks.loss.elt.rotation == 180
  for c, rot in ((hgr1, 20), (w300, 30)):
    assert dict(c.loss.elt) == {"rotation": rot, "scale": 0.1, "translation": 0.1}
    assert (c.augment.rotation, c.augment.scale, c.augment.translation) == (rot, 0.1, 0.1)
  assert hgr1.loss.elt_on == "unlabeled" and w300.loss.elt_on == "all"
  assert EXP["the300w_rcn"].get_config("").loss.elt_on == "all"
  assert w300.augment.black_rectangles > 0 < w300.augment.rectangle_size
  assert blocks.augment.black_rectangles == 0
  assert w300.data.test_splits == ("test_common", "test_ibug", "test_full")


# The paper's cells, written out by hand from the paper (not from
# paper_results): rows x label fractions, minus the blank L+T cells at 100%.
def _grid(rows, fractions, blanks=()):
  return {(m, c, f) for m, c in rows for f in fractions} - set(blanks)


_TABLE_ROWS = [("seq_mt", "L"), ("seq_mt", "L+C"), ("seq_mt", "L+T"),
               ("seq_mt", "L+T+C"), ("comm_mt", "L"), ("comm_mt", "L+C"),
               ("heatmap_mt", "L"), ("heatmap_mt", "L+C")]
_BLANKS = [("seq_mt", "L+T", 1.0), ("seq_mt", "L+T+C", 1.0)]
_F5 = (0.05, 0.1, 0.2, 0.5, 1.0)
CELLS = {
    "shapes": {("seq_mt", "C", 1.0)},
    "blocks": _grid(_TABLE_ROWS, (0.01,) + _F5, _BLANKS),
    "hgr1": _grid(_TABLE_ROWS, _F5, _BLANKS),
    "multipie": _grid(_TABLE_ROWS, _F5, _BLANKS),
    "the300w": _grid([("seq_mt", "L"), ("seq_mt", "L+T"), ("comm_mt", "L"),
                      ("heatmap_mt", "L")], _F5),
    "the300w_rcn": _grid([("rcn_plus", "L"), ("rcn_plus", "L+T")], _F5)
                   | {("rcn", "L", 1.0)},
}


@pytest.mark.parametrize("name", NAMES)
def test_sweep_has_the_papers_cells_and_unique_names(name):
  exp = EXP[name]
  runs = exp.sweep()
  names = [r["name"] for r in runs]
  assert len(names) == len(set(names)) == 5 * len(CELLS[name])
  got = {}
  for r in runs:
    assert set(r) == {"name", "config_arg", "overrides"}
    config = exp.get_config(r["config_arg"])
    config.update_from_flattened_dict(r["overrides"])
    cell = (configs.row_model(config.model), config.costs,
            config.data.labeled_fraction)
    got.setdefault(cell, set()).add(config.seed)
    assert r["name"] == configs.run_name(*cell, config.seed)
  assert set(got) == CELLS[name]
  assert all(seeds == {0, 1, 2, 3, 4} for seeds in got.values())
  assert len(exp.sweep(seeds=(7,))) == len(CELLS[name])


def test_run_names():
  assert configs.run_name("seq_mt", "L+T+C", 0.05, 0) == "seq_mt_L+T+C_f0.05_s0"
  assert configs.run_name("rcn_plus", "L", 1.0, 4) == "rcn_plus_L_f1_s4"


def test_paper_numbers_spot_checks():
  v = paper_results.value
  assert v("blocks", "landmark_error", "test", "seq_mt", "L+T+C", 0.05) == 1.70
  assert v("blocks", "landmark_error", "test", "seq_mt", "L+T", 1.0) is None
  assert v("hgr1", "landmark_error", "test", "comm_mt", "L+C", 0.2) == 35.5
  assert v("hgr1", "accuracy/gesture", "test", "heatmap_mt", "L+C", 0.5) == 90.29
  assert v("multipie", "accuracy/camera", "test", "seq_mt", "L+T+C", 0.05) == 98.41
  assert v("the300w", "landmark_error", "test_ibug", "rcn_plus", "L+T", 0.05) == 12.54
  assert v("the300w", "landmark_error", "test_common", "seq_mt", "L", 1.0) == 4.93
  assert paper_results.ROWS["blocks"] == _TABLE_ROWS
  assert paper_results.row_label("rcn_plus", "L+T") == "RCN+ (L+T)"


def test_load_experiment_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.py"):
    configs.load_experiment(str(tmp_path / "nope.py"))
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(arg=None):\n  return None\n")
  with pytest.raises(ValueError, match="sweep"):
    configs.load_experiment(str(bad))


def test_flat_items_round_trip_through_config_overrides():
  """Every leaf of a real config, flattened, sets a fresh default config back
  to it; nested keys are dotted and an empty mapping is a leaf."""
  rng = np.random.default_rng()
  config = EXP["blocks"].get_config("model=seq_mt,costs=L+T")
  config.model.beta = float(rng.uniform(0.1, 5.0))
  config.loss.elt.scale = float(rng.uniform(0.0, 0.3))
  flat = dict(configs.flat_items(config.to_dict()))
  assert flat["model.beta"] == config.model.beta
  assert flat["loss.elt.scale"] == config.loss.elt.scale
  fresh = EXP["blocks"].get_config("model=seq_mt,costs=L+T")
  fresh.update_from_flattened_dict(flat)
  assert fresh.to_dict() == config.to_dict()
  assert dict(configs.flat_items({"a": {}, "b": {"c": 1}})) == {"a": {}, "b.c": 1}


@pytest.mark.parametrize("name", ["hgr1"])  # Multi-PIE: the same weights
def test_class_and_landmark_gradients_are_balanced(name):
  """At the configured weights, on a batch shaped like the dataset's, the
  class term's gradient at the first conv layer is within three orders of
  magnitude of the landmark term's (eq. 3 read with the weight on the
  landmark term); the other reading makes it about a millionth."""
  exp = EXP[name]
  config = exp.get_config("model=seq_mt,costs=L+C")
  h, w, _ = exp.IMAGE_SHAPE
  k = exp.NUM_LANDMARKS
  rng = np.random.default_rng()
  # Direct convolutions compile fastest; the gradients are the same.
  model = models.create_model(dict(config.model, conv_method="direct"), k,
                              dict(exp.CLASSES))
  n = 2
  images = jnp.asarray(rng.uniform(size=(n,) + exp.IMAGE_SHAPE), jnp.float32)
  params = model.init(jax.random.key(int(rng.integers(1 << 30))),
                      images[:1])["params"]
  # Landmarks spread over the middle of the crop, as the builders store them.
  target = jnp.asarray(rng.uniform(0.2 * w, 0.8 * w, (n, k, 2)), jnp.float32)
  labels = {head: jnp.asarray(rng.integers(0, c, n), jnp.int32)
            for head, c in exp.CLASSES.items()}

  def terms(p):
    out = model.apply({"params": p}, images)
    landmark = losses.landmark_loss(out["landmarks"], target)
    nll = sum(losses.classification_loss(out["logits"][h_], labels[h_])
              for h_ in labels)
    return landmark, nll

  def first_conv(grads):
    path, leaf = min(
        ((p, l) for p, l in jax.tree_util.tree_leaves_with_path(grads)
         if getattr(p[-1], "key", None) == "kernel" and l.ndim == 4),
        key=lambda pl: jax.tree_util.keystr(pl[0]))
    return float(jnp.linalg.norm(leaf))

  grads = jax.jit(jax.jacrev(lambda p: jnp.stack(terms(p))))(params)
  g_landmark = first_conv(jax.tree.map(lambda g: g[0], grads))
  g_class = first_conv(jax.tree.map(lambda g: g[1], grads))
  ratio = (config.loss.alpha * g_class) / (
      config.loss.landmark_weight * g_landmark)
  assert 1e-3 < ratio < 1e3, ratio
  # The other reading (0.001 on the class NLL, 1 on the landmarks).
  assert (config.loss.landmark_weight * g_class) / g_landmark < 1e-4
