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
    "rcn": dict(name="rcn", features=(4, 6, 8), kernel_sizes=(3, 3, 3)),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_shapes(name):
  k = 5
  heads = {} if name == "rcn" else {"label": 7, "camera": 3}
  model = models.create_model(SMALL[name], num_landmarks=k, heads=heads)
  images = jax.random.uniform(jax.random.PRNGKey(0), (3, 24, 28, 1))
  variables = model.init(jax.random.PRNGKey(1), images)
  out = model.apply(variables, images, train=True,
                    rngs={"dropout": jax.random.PRNGKey(2)})
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


def test_rcn_plus_and_rcn_landmark_costs():
  cfg = dict(SMALL["rcn"])
  assert models.create_model(cfg, 3).landmark_cost == "coordinates"
  assert models.create_model(dict(cfg, soft_argmax=False), 3).landmark_cost == "heatmap"
  with pytest.raises(ValueError, match="divisible"):
    m = models.create_model(cfg, 3)
    m.init(jax.random.PRNGKey(0), jnp.ones((1, 10, 10, 1)))


def test_registry_rejects_unknown_names_and_settings():
  with pytest.raises(ValueError, match="seq_mt"):
    models.create_model(dict(name="seqmt"), 5)
  with pytest.raises(ValueError, match="kernel_sizes"):
    models.create_model(dict(name="seq_mt", kernel_size=3), 5)
  with pytest.raises(ValueError, match="derived"):
    models.create_model(dict(name="seq_mt", num_landmarks=3), 5)


def test_dropout_is_active_only_in_training():
  model = models.create_model(dict(SMALL["seq_mt"], dropout=0.5), 4, {"c": 3})
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 1))
  v = model.init(jax.random.PRNGKey(1), x)
  e1 = model.apply(v, x)["logits"]["c"]
  e2 = model.apply(v, x)["logits"]["c"]
  np.testing.assert_array_equal(e1, e2)
  t1 = model.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
  t2 = model.apply(v, x, train=True, rngs={"dropout": jax.random.PRNGKey(4)})
  assert not np.allclose(t1["logits"]["c"], t2["logits"]["c"])
  np.testing.assert_array_equal(t1["landmarks"], t2["landmarks"])


def test_class_gradient_reaches_first_conv_through_the_soft_argmax():
  """The class NLL's gradient on the first conv kernel is non-zero and equals
  the chain rule through the landmark coordinates alone: the classifier sees
  nothing of the image but the soft-argmax output."""
  model = models.create_model(SMALL["seq_mt"], num_landmarks=3, heads={"c": 4})
  x = jax.random.uniform(jax.random.PRNGKey(0), (4, 16, 16, 1))
  labels = jnp.array([0, 1, 2, 3])
  params = model.init(jax.random.PRNGKey(1), x)["params"]

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


def test_comm_mt_class_activations():
  """The readings of footnote 7 on the same parameters: 'sigmoid_normalized'
  gives exactly sigmoid(z) / sum(sigmoid(z)) of the plain ('none') output z;
  with the head set to output a known z (zero kernel, bias b), 'sigmoid'
  caps every class probability at e / (e + C - 1) and the normalised
  reading does not."""
  classes = 6
  cfg = dict(SMALL["comm_mt"])
  images = jax.random.uniform(jax.random.PRNGKey(3), (5, 16, 16, 1))
  b = jnp.array([9.0, -9.0, -9.0, -8.0, -9.5, -9.0])
  def probs(activation, known_bias=False):
    model = models.create_model(dict(cfg, class_activation=activation), 3,
                                heads={"label": classes})
    variables = model.init(jax.random.PRNGKey(4), images)
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
