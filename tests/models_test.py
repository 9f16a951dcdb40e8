"""Model outputs, the registry, and the point of the paper: class labels
train the landmark net through the soft-argmax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_ssl import losses, models

SMALL = {
    "seq_mt": dict(name="seq_mt", kernel_sizes=(5, 5, 1), features=4, beta=1.0,
                   classifier_hidden=(16,), dropout=0.25),
    "comm_mt": dict(name="comm_mt", kernel_size=3, features=4, hidden=(16, 16)),
    "heatmap_mt": dict(name="heatmap_mt", kernel_sizes=(5, 5, 1), features=4,
                       classifier_convs=(4,), classifier_hidden=(16,)),
    "rcn": dict(name="rcn", down_features=((4,), (6,), (8,)),
                down_kernel_sizes=((3,),) * 3, up_features=((4,), (6, 5), (8,)),
                up_kernel_sizes=((5,), (3, 1), (3,))),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_shapes(name, fresh_key):
  k = 5
  heads = {} if name == "rcn" else {"label": 7, "camera": 3}
  model = models.create_model(SMALL[name], num_landmarks=k, heads=heads)
  images = jax.random.uniform(fresh_key(0), (3, 24, 28, 1))
  variables = model.init(fresh_key(1), images)
  out = model.apply(variables, images, train=True,
                    rngs={"dropout": fresh_key(2)})
  assert set(out) == {"landmarks", "maps", "logits"}
  assert out["landmarks"].shape == (3, k, 2)
  if name == "comm_mt":
    assert out["maps"] is None
  else:
    assert out["maps"].shape == (3, 24, 28, k)
  assert {h: v.shape for h, v in out["logits"].items()} == {
      h: (3, n) for h, n in heads.items()}
  assert model.landmark_cost in ("coordinates", "heatmap")
  lm = np.asarray(out["landmarks"])
  assert np.all(np.isfinite(lm))
  assert lm[..., 0].min() >= -1e-3 or name == "comm_mt"  # inside for map models
  if name != "comm_mt":
    assert lm[..., 0].max() <= 27 + 1e-3 and lm[..., 1].max() <= 23 + 1e-3


def test_rcn_plus_and_rcn_landmark_costs(fresh_key):
  cfg = dict(SMALL["rcn"])
  assert models.create_model(cfg, 3).landmark_cost == "coordinates"
  assert models.create_model(dict(cfg, soft_argmax=False), 3).landmark_cost == "heatmap"
  with pytest.raises(ValueError, match="divisible"):
    m = models.create_model(cfg, 3)
    m.init(fresh_key(0), jnp.ones((1, 10, 10, 1)))


def test_rcn_rejects_inconsistent_settings(fresh_key):
  cfg = dict(SMALL["rcn"])
  x = jnp.ones((1, 8, 8, 1))
  bad = [
      (dict(up_features=((4,), (6,))), "one entry per branch"),
      (dict(up_kernel_sizes=((5,), (3,), (3,))), "same number"),
      (dict(down_features=((4,), (), (8,)), down_kernel_sizes=((3,), (), (3,))),
       "at least one"),
      (dict(down_features=(4, 6, 8)), "one tuple of ints per branch"),
      (dict(skip="max"), "window_max"),
      (dict(upsampling="bilinear"), "learned"),
      (dict(weight_init="glorot"), "published"),
  ]
  for change, match in bad:
    with pytest.raises(ValueError, match=match):
      models.create_model(dict(cfg, **change), 3).init(fresh_key(0), x)


# The published 300W RCN (the300w_rcn.py's docstring), as (kernel, maps in,
# maps out) of each conv, read off the authors' layer list: layerSh1-Sh5
# (down), S1 S2, D1, C1 C2, M1 M2, F1 F2 F3 (up: the first of each branch
# takes [down maps, upsampled coarser output] except S1), FOut (to K).
_PUBLISHED_300W_CONVS = (
    [(3, 1, 64)] + [(3, 64, 64)] * 4
    + [(5, 64, 64), (1, 64, 64)] + [(5, 128, 64)]
    + [(5, 128, 64), (1, 64, 64)] * 2 + [(5, 128, 64), (1, 64, 64), (1, 64, 64)]
    + [(1, 64, 68)])


def _published_rcn(**changes):
  return models.create_model(dict(name="rcn", **changes), num_landmarks=68)


def test_default_rcn_is_the_published_300w_network(fresh_key):
  """Five branches at 80, 40, 20, 10, 5 px, 64 maps, one 3x3 conv per branch
  down; up: 2, 1, 2, 2, 3 convs from 5 to 80 px (5x5 first, then 1x1), each
  finer branch's first conv on 128 = 64 + 64 concatenated maps; a 1x1 conv
  to 68 maps; no batch-norm state; 1,095,492 parameters."""
  model = _published_rcn()
  x = jax.ShapeDtypeStruct((1, 80, 80, 1), jnp.float32)
  variables = jax.eval_shape(model.init, fresh_key(0), x)
  assert set(variables) == {"params"}
  params = variables["params"]
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, capture_intermediates=True,
                               mutable=["intermediates"]), variables, x)
  inter = state["intermediates"]

  def out_shape(name):
    return inter[name]["__call__"][0].shape

  sides = (80, 40, 20, 10, 5)
  for b, side in enumerate(sides):
    assert out_shape(f"down{b}_0") == (1, side, side, 64)
    c_in = 1 if b == 0 else 64
    assert params[f"down{b}_0"]["kernel"].shape == (3, 3, c_in, 64)
    assert f"down{b}_1" not in params
  up_convs = {0: 3, 1: 2, 2: 2, 3: 1, 4: 2}
  for b, n in up_convs.items():
    names = sorted(k for k in params if k.startswith(f"up{b}_"))
    assert names == [f"up{b}_{i}" for i in range(n)]
    for i, name in enumerate(names):
      k = 5 if i == 0 else 1
      c_in = 64 if i or b == 4 else 128
      assert params[name]["kernel"].shape == (k, k, c_in, 64)
      assert out_shape(name) == (1, sides[b], sides[b], 64)
  assert params["maps"]["kernel"].shape == (1, 1, 64, 68)
  assert out_shape("maps") == (1, 80, 80, 68)
  assert len(params) == len(_PUBLISHED_300W_CONVS) == 5 + 10 + 1

  count = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
  by_hand = sum(k * k * c_in * c_out + c_out
                for k, c_in, c_out in _PUBLISHED_300W_CONVS)
  assert count == by_hand == 1_095_492
  # The released checkpoint's options: one 3x3 kernel per upsampling (4).
  learned = jax.eval_shape(_published_rcn(upsampling="learned").init,
                           fresh_key(0), x)
  assert sum(int(np.prod(a.shape))
             for a in jax.tree_util.tree_leaves(learned)) == count + 4 * 9


def test_the300w_rcn_experiment_builds_the_published_network(fresh_key):
  """experiments/the300w_rcn.py's model is the class default (published)
  network, for RCN+ and RCN; its quick variant is the same kind, smaller."""
  import os
  from landmark_ssl import configs
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  exp = configs.load_experiment(
      os.path.join(root, "experiments", "the300w_rcn.py"))
  x = jax.ShapeDtypeStruct((1, 80, 80, 1), jnp.float32)

  def count(model_config):
    model = models.create_model(model_config, 68)
    shapes = jax.eval_shape(model.init, fresh_key(0), x)
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(shapes))

  for arg in ("model=rcn_plus", "model=rcn,costs=L"):
    model_config = exp.get_config(arg).model.to_dict()
    defaults = {k: v for k, v in model_config.items()
                if k not in ("name", "soft_argmax", "beta")}
    assert defaults == {k: getattr(models.RCN, k) for k in defaults}
    assert count(model_config) == 1_095_492
  assert count(exp.get_config("quick").model.to_dict()) < 20_000


def test_published_rcn_forward_rcn_plus_and_rcn(fresh_key):
  """One 80x80 image through the default net: RCN+ reads the soft-argmax of
  the maps, RCN (same parameters, same maps) their argmax; no train/eval
  difference (no batch norm, no dropout)."""
  x = jax.random.uniform(fresh_key(0), (1, 80, 80, 1))
  plus = _published_rcn(beta=0.5)
  plain = _published_rcn(soft_argmax=False)

  @jax.jit
  def both(x):
    variables = plus.init(fresh_key(1), x)
    return plus.apply(variables, x), plain.apply(variables, x, train=True)

  out, out_plain = both(x)
  assert out["maps"].shape == (1, 80, 80, 68)
  assert out["landmarks"].shape == (1, 68, 2) and out["logits"] == {}
  np.testing.assert_allclose(
      out["landmarks"], models.rcn.geometry.soft_argmax(out["maps"], 0.5),
      rtol=1e-6)
  lm = np.asarray(out["landmarks"])
  assert np.all(np.isfinite(lm)) and lm.min() >= 0 and lm.max() <= 79
  assert float(jnp.std(out["maps"])) > 0
  np.testing.assert_allclose(out_plain["maps"], out["maps"], atol=1e-6)
  np.testing.assert_array_equal(
      out_plain["landmarks"], models.rcn.geometry.hard_argmax(out["maps"]))


def test_rcn_published_options_window_max_and_learned_upsampling(fresh_key):
  rcn = models.rcn
  x = jnp.array([[1.0, 3.0, 0.0, 0.0],
                 [2.0, 3.0, 0.0, -1.0]])[None, :, :, None]
  np.testing.assert_array_equal(
      rcn.keep_window_max(x)[0, :, :, 0],
      [[0.0, 3.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])  # ties all kept
  # The learned upsampling with kernel [[1,1,0],[1,1,0],[0,0,0]] repeats.
  y = jax.random.normal(fresh_key(0), (2, 3, 5, 4))
  ones = jnp.array([1.0, 1.0, 0.0])
  repeat_kernel = jnp.outer(ones, ones)
  up = rcn.LearnedUpsampling().apply({"params": {"kernel": repeat_kernel}}, y)
  np.testing.assert_allclose(up, rcn.upsample_repeat(y), atol=1e-6)
  assert up.shape == (2, 6, 10, 4)
  # So the whole net with learned upsampling set to that kernel is the
  # repeat net.
  cfg = dict(SMALL["rcn"])
  images = jax.random.uniform(fresh_key(1), (2, 8, 12, 1))
  learned = models.create_model(dict(cfg, upsampling="learned"), 3)
  variables = learned.init(fresh_key(2), images)
  params = dict(variables["params"])
  assert {k for k in params if k.startswith("upsample")} == {"upsample0",
                                                              "upsample1"}
  for k in ("upsample0", "upsample1"):
    params[k] = {"kernel": repeat_kernel}
  repeat = models.create_model(cfg, 3)
  repeat_params = {k: v for k, v in params.items()
                   if not k.startswith("upsample")}
  np.testing.assert_allclose(
      learned.apply({"params": params}, images)["maps"],
      repeat.apply({"params": repeat_params}, images)["maps"], atol=1e-5)
  # window_max changes the maps but not the parameters.
  wm = models.create_model(dict(cfg, skip="window_max"), 3)
  out_wm = wm.apply({"params": repeat_params}, images)["maps"]
  out_all = repeat.apply({"params": repeat_params}, images)["maps"]
  assert not np.allclose(out_wm, out_all)


def test_rcn_local_contrast_normalisation(fresh_key):
  rcn = models.rcn
  # The published window: 1-based pixels 1..9, centre 9/2 + 0.5, sigma
  # 1.591/9 of the width, normalised to sum one.
  idx = np.arange(1, 10, dtype=np.float64)
  d = (idx - 5.0) / ((1.591 / 9) * 9)
  g = np.exp(-(d[None, :] ** 2 + d[:, None] ** 2) / 2)
  np.testing.assert_allclose(rcn._gaussian_window(9, 1.591), g / g.sum(),
                             rtol=1e-5)
  x = jax.random.uniform(fresh_key(0), (2, 20, 24, 1))
  out = rcn.local_contrast_normalize(x)
  assert out.shape == x.shape and np.all(np.isfinite(out))
  # Contrast (gain) invariant.
  np.testing.assert_allclose(rcn.local_contrast_normalize(3.0 * x), out,
                             atol=1e-4)
  # Each image on its own: the other images of the batch change nothing.
  np.testing.assert_allclose(rcn.local_contrast_normalize(x[:1]), out[:1],
                             atol=1e-6)
  # A constant image maps to 0.5, not 0/0.
  constant = jnp.zeros((1, 9, 9, 1))
  np.testing.assert_allclose(rcn.local_contrast_normalize(constant), 0.5)


def test_rcn_published_init(fresh_key):
  kernel = models.rcn.published_kernel_init(fresh_key(0),
                                            (5, 5, 128, 64))
  # The bound as float32 rounds it (1.5e-9 up): a draw of exactly -bound
  # (one in 2**23 per value) exceeds the float64 bound.
  bound = float(np.float32(np.sqrt(6.0 / (25 * 128 + 25 * 64 / 4))))
  a = np.abs(np.asarray(kernel))
  assert a.max() <= bound and a.max() > 0.99 * bound
  np.testing.assert_allclose(a.mean(), bound / 2, rtol=0.02)  # uniform


def test_registry_rejects_unknown_names_and_settings():
  with pytest.raises(ValueError, match="seq_mt"):
    models.create_model(dict(name="seqmt"), 5)
  with pytest.raises(ValueError, match="kernel_sizes"):
    models.create_model(dict(name="seq_mt", kernel_size=3), 5)
  with pytest.raises(ValueError, match="derived"):
    models.create_model(dict(name="seq_mt", num_landmarks=3), 5)


def test_dropout_is_active_only_in_training(fresh_key):
  # 64 hidden units: with 16, both masks kept the same active units (and so
  # gave equal logits) about once in 3000 seeds.
  seq_mt = dict(SMALL["seq_mt"], classifier_hidden=(64,))
  model = models.create_model(dict(seq_mt, dropout=0.5), 4, {"c": 3})
  x = jax.random.uniform(fresh_key(0), (2, 16, 16, 1))
  v = model.init(fresh_key(1), x)
  # Evaluation: no dropout rng needed, and the same outputs as the model
  # without dropout (same variables: dropout has none).
  e1 = model.apply(v, x)
  e0 = models.create_model(dict(seq_mt, dropout=0.0), 4,
                           {"c": 3}).apply(v, x)
  jax.tree.map(np.testing.assert_array_equal, e1, e0)
  t1 = model.apply(v, x, train=True, rngs={"dropout": fresh_key(3)})
  t2 = model.apply(v, x, train=True, rngs={"dropout": fresh_key(4)})
  assert not np.allclose(t1["logits"]["c"], t2["logits"]["c"])
  np.testing.assert_array_equal(t1["landmarks"], t2["landmarks"])


def test_class_gradient_reaches_first_conv_through_the_soft_argmax(fresh_key):
  """The class NLL's gradient on the first conv kernel is non-zero and equals
  the chain rule through the landmark coordinates alone: the classifier sees
  nothing of the image but the soft-argmax output."""
  model = models.create_model(SMALL["seq_mt"], num_landmarks=3, heads={"c": 4})
  x = jax.random.uniform(fresh_key(0), (4, 16, 16, 1))
  labels = jnp.array([0, 1, 2, 3])
  params = model.init(fresh_key(1), x)["params"]

  def class_loss(p):
    return losses.classification_loss(model.apply({"params": p}, x)["logits"]["c"], labels)

  g = jax.grad(class_loss)(params)
  g_first = g["landmark_net"]["conv0"]["kernel"]
  assert np.all(np.isfinite(g_first)) and float(jnp.abs(g_first).sum()) > 0

  # Chain rule through the landmarks: d loss / d L, then L's vjp.
  landmarks_fn = lambda p: model.apply({"params": p}, x)["landmarks"]
  lm, vjp = jax.vjp(landmarks_fn, params)

  def loss_of_landmarks(lm):
    coords = models.layers.normalize_points(lm, 16, 16).reshape(4, -1)
    logits = models.layers.MLPHead(
        (16,), 4, 0.25).apply({"params": params["head_c"]}, coords, False)
    return losses.classification_loss(logits, labels)

  g_lm = jax.grad(loss_of_landmarks)(lm)
  (g_chain,) = vjp(g_lm)
  np.testing.assert_allclose(g_chain["landmark_net"]["conv0"]["kernel"], g_first,
                             rtol=1e-4, atol=1e-7)


def test_comm_mt_class_activations(fresh_key):
  """The readings of footnote 7 on the same parameters: 'sigmoid_normalized'
  gives exactly sigmoid(z) / sum(sigmoid(z)) of the plain ('none') output z;
  with the head set to output a known z (zero kernel, bias b), 'sigmoid'
  caps every class probability at e / (e + C - 1) and the normalised
  reading does not."""
  classes = 6
  cfg = dict(SMALL["comm_mt"])
  images = jax.random.uniform(fresh_key(3), (5, 16, 16, 1))
  b = jnp.array([9.0, -9.0, -9.0, -8.0, -9.5, -9.0])
  def probs(activation, known_bias=False):
    model = models.create_model(dict(cfg, class_activation=activation), 3,
                                heads={"label": classes})
    variables = model.init(fresh_key(4), images)
    if known_bias:
      head = variables["params"]["head_label"]
      variables = {"params": dict(variables["params"], head_label={
          "kernel": jnp.zeros_like(head["kernel"]), "bias": b})}
    logits = model.apply(variables, images)["logits"]["label"]
    return logits, jax.nn.softmax(logits, axis=-1)
  z, _ = probs("none")
  _, p_norm = probs("sigmoid_normalized")
  s = jax.nn.sigmoid(z)
  np.testing.assert_allclose(p_norm, s / s.sum(-1, keepdims=True), rtol=1e-5)
  cap = np.e / (np.e + classes - 1)
  _, p_sig = probs("sigmoid", known_bias=True)
  assert float(p_sig.max()) <= cap + 1e-6
  _, p_known = probs("sigmoid_normalized", known_bias=True)
  sb = jax.nn.sigmoid(b)
  np.testing.assert_allclose(p_known, jnp.broadcast_to(sb / sb.sum(), (5, classes)),
                             rtol=1e-5)
  assert float(p_known[:, 0].min()) > 0.99
  with pytest.raises(ValueError, match="class_activation"):
    probs("softmax")
