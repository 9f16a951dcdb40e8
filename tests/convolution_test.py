"""The FFT and pointwise formulations equal ``lax.conv`` (values and
gradients) on fresh random inputs; the models' nets do not depend on them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_ssl import models
from landmark_ssl.models import convolution, layers

RTOL = 2e-5  # of the largest magnitude; float32 FFT rounding is ~1e-6


def _close(actual, expected, rtol=RTOL):
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = np.max(np.abs(expected))
  assert scale > 0
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def _positive_biases(variables, key):
  """``variables`` with every bias drawn from U(0.05, 0.15). With the zero
  initial biases, a ReLU whose receptive field is all zero padding sits at
  exactly 0 under 'direct' but at +-1e-8 under 'fft', so one passes gradient
  and the other does not (about 1 seed in 80 differed)."""
  leaves, tree = jax.tree_util.tree_flatten_with_path(variables)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(tree, [
      jax.random.uniform(k, v.shape, v.dtype, 0.05, 0.15)
      if getattr(path[-1], "key", None) == "bias" else v
      for (path, v), k in zip(leaves, keys)])


def _nchw(x):
  return jnp.transpose(x, (0, 3, 1, 2))


def _nhwc(x):
  return jnp.transpose(x, (0, 2, 3, 1))


def _random(seed, n, h, w, c, o, k):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, c, o)), jnp.float32)
  cot = jnp.asarray(rng.standard_normal((n, h, w, o)), jnp.float32)
  return x, kernel, cot


def _value_and_grads(conv, x, kernel, cot):
  def f(x, kernel):
    return jnp.sum(conv(x, kernel) * cot)
  return conv(x, kernel), jax.grad(f, argnums=(0, 1))(x, kernel)


# (n, h, w, c, o, k): odd and non-square sides, 1-channel input, kernels of
# 3 to 9, small channel products (unrolled mix) and large ones (einsum mix).
FFT_CASES = [
    (3, 11, 14, 1, 4, 9),
    (9, 12, 9, 3, 5, 5),
    (2, 10, 10, 4, 4, 3),
    (2, 9, 13, 17, 16, 7),
    (11, 8, 8, 2, 3, 9),  # batch not a multiple of the VJP's chunk of 8
]


@pytest.mark.parametrize("case", FFT_CASES)
def test_fft_conv_equals_direct_conv_values_and_gradients(case, fresh_seed):
  x, kernel, cot = _random(fresh_seed, *case)
  ref, (gx_ref, gk_ref) = _value_and_grads(convolution.conv_direct, x, kernel, cot)
  fft = lambda x, k: _nhwc(convolution.conv_fft(_nchw(x), k))
  out, (gx, gk) = _value_and_grads(fft, x, kernel, cot)
  _close(out, ref)
  _close(gx, gx_ref)
  _close(gk, gk_ref)


@pytest.mark.parametrize("c,o", [(8, 5), (1, 3), (20, 16)])
def test_pointwise_conv_equals_direct_conv_values_and_gradients(c, o,
                                                              fresh_seed):
  x, kernel, cot = _random(fresh_seed, 10, 7, 6, c, o, 1)
  ref, (gx_ref, gk_ref) = _value_and_grads(convolution.conv_direct, x, kernel, cot)
  pw = lambda x, k: _nhwc(convolution.conv_pointwise(_nchw(x), k))
  out, (gx, gk) = _value_and_grads(pw, x, kernel, cot)
  _close(out, ref)
  _close(gx, gx_ref)
  _close(gk, gk_ref)


def test_channel_mix_vjp_matches_autodiff_of_the_plain_sum_for_complex_values(
    fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  cplx = lambda *s: jnp.asarray(rng.standard_normal(s) + 1j * rng.standard_normal(s),
                                jnp.complex64)
  x, w, ct = cplx(13, 3, 4, 5), cplx(3, 2, 4, 5), cplx(13, 2, 4, 5)
  plain = lambda x, w: jnp.sum(x[:, :, None] * w[None], axis=1)
  out, vjp = jax.vjp(convolution.channel_mix, x, w)
  ref, vjp_ref = jax.vjp(plain, x, w)
  _close(out, ref)
  for got, want in zip(vjp(ct), vjp_ref(ct)):
    _close(got, want)


def test_kernel_spectrum_is_the_fft_of_the_centred_kernel(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  k, p, q = 5, 12, 9
  kernel = rng.standard_normal((k, k, 2, 3)).astype(np.float32)
  # Place tap (a, b) at ((r - a) mod p, (r - b) mod q): the FFT of that image
  # is sum_ab kernel[a, b] exp(-2 pi i (u (r - a) / p + v (r - b) / q)).
  r = k // 2
  image = np.zeros((2, 3, p, q), np.float32)
  for a in range(k):
    for b in range(k):
      image[:, :, (r - a) % p, (r - b) % q] += kernel[a, b]
  _close(convolution.kernel_spectrum(jnp.asarray(kernel), p, q),
         np.fft.rfft2(image), rtol=1e-5)


def test_resolve_method():
  assert convolution.resolve_method("auto", 9, backend="cpu") == "fft"
  assert convolution.resolve_method("auto", 7, backend="cpu") == "fft"
  assert convolution.resolve_method("auto", 5, backend="cpu") == "direct"
  assert convolution.resolve_method("auto", 9, backend="gpu") == "direct"
  assert convolution.resolve_method("fft", 3) == "fft"
  assert convolution.resolve_method("direct", 9) == "direct"
  with pytest.raises(ValueError, match="config.model.conv_method"):
    convolution.resolve_method("winograd", 9)


def test_landmark_net_is_the_same_function_with_the_same_parameters(
    fresh_key):
  images = jax.random.uniform(fresh_key(0), (5, 13, 11, 1))
  nets = {m: layers.LandmarkConvNet((9, 5, 1, 1), 4, 3, m)
          for m in ("direct", "fft", "auto")}
  params = nets["direct"].init(fresh_key(1), images)
  for m, net in nets.items():
    mine = net.init(fresh_key(1), images)
    assert jax.tree.structure(mine) == jax.tree.structure(params), m
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(params)):
      np.testing.assert_array_equal(a, b)  # same names -> same initial values
  params = _positive_biases(params, fresh_key(2))

  def loss(p, net):
    return jnp.sum(jnp.sin(net.apply(p, images)))

  ref = nets["direct"].apply(params, images)
  ref_grads = jax.grad(loss)(params, nets["direct"])
  for m in ("fft", "auto"):
    _close(nets[m].apply(params, images), ref)
    for got, want in zip(jax.tree.leaves(jax.grad(loss)(params, nets[m])),
                         jax.tree.leaves(ref_grads)):
      _close(got, want)


def test_models_take_conv_method_from_the_config(fresh_key):
  cfg = dict(name="seq_mt", kernel_sizes=(7, 1), features=3,
             classifier_hidden=(4,), conv_method="fft")
  model = models.create_model(cfg, 2, {"label": 3})
  assert model.conv_method == "fft"
  images = jax.random.uniform(fresh_key(0), (2, 10, 10, 1))
  variables = model.init(fresh_key(1), images)
  out = model.apply(variables, images)
  direct = models.create_model(dict(cfg, conv_method="direct"), 2, {"label": 3})
  _close(out["maps"], direct.apply(variables, images)["maps"])
  with pytest.raises(ValueError, match="conv_method"):
    bad = models.create_model(dict(cfg, conv_method="fast"), 2, {"label": 3})
    bad.init(fresh_key(1), images)


def test_fft_net_on_the_data_mesh_equals_one_device(fresh_key):
  """The FFT formulation partitions over the batch like lax.conv does."""
  from landmark_ssl import steps
  mesh = steps.make_mesh()
  n = 2 * mesh.devices.size
  images = jax.random.uniform(fresh_key(0), (n, 12, 12, 1))
  net = layers.LandmarkConvNet((9, 1), 3, 2, "fft")
  params = net.init(fresh_key(1), images[:1])

  def loss(p, x):
    return jnp.sum(jnp.sin(net.apply(p, x)))

  sharded = jax.jit(jax.value_and_grad(loss),
                    in_shardings=(steps.replicated(mesh), steps.data_sharded(mesh)))
  value, grads = sharded(params, images)
  value_ref, grads_ref = jax.value_and_grad(loss)(params, images)
  # The sum can cancel to far below its terms: the tolerance is relative to
  # the sum of their magnitudes.
  terms = float(jnp.sum(jnp.abs(jnp.sin(net.apply(params, images)))))
  np.testing.assert_allclose(value, value_ref, rtol=0, atol=RTOL * terms)
  for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
    _close(got, want)


def test_same_conv_has_nn_conv_parameters_and_values(fresh_key):
  """Checkpoints written with flax's nn.Conv load into SameConv unchanged."""
  import flax.linen as nn
  x = jax.random.uniform(fresh_key(0), (2, 9, 8, 3))
  ours = layers.SameConv(5, 7, "fft", "NCHW")
  theirs = nn.Conv(5, (7, 7), padding="SAME", kernel_init=layers.conv_init)
  p_ours = ours.init(fresh_key(1), _nchw(x))
  p_theirs = theirs.init(fresh_key(1), x)
  assert jax.tree.structure(p_ours) == jax.tree.structure(p_theirs)
  for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_theirs)):
    np.testing.assert_array_equal(a, b)
  p = jax.tree.map(lambda v: v + 0.1, p_theirs)  # a non-zero bias too
  _close(_nhwc(ours.apply(p, _nchw(x))), theirs.apply(p, x))


def test_comm_mt_fft_equals_direct(fresh_key):
  cfg = dict(name="comm_mt", kernel_size=7, features=3, convs_before_pool=2,
             convs_after_pool=1, hidden=(8,), conv_method="direct")
  images = jax.random.uniform(fresh_key(0), (3, 12, 16, 1))
  direct = models.create_model(cfg, 2, {"label": 3})
  fft = models.create_model(dict(cfg, conv_method="fft"), 2, {"label": 3})
  variables = direct.init(fresh_key(1), images)
  assert (jax.tree.structure(fft.init(fresh_key(1), images))
          == jax.tree.structure(variables))
  variables = _positive_biases(variables, fresh_key(2))

  def loss(v, model):
    out = model.apply(v, images)
    return jnp.sum(out["landmarks"] ** 2) + jnp.sum(out["logits"]["label"])

  _close(fft.apply(variables, images)["landmarks"],
         direct.apply(variables, images)["landmarks"])
  for got, want in zip(jax.tree.leaves(jax.grad(loss)(variables, fft)),
                       jax.tree.leaves(jax.grad(loss)(variables, direct))):
    _close(got, want)
