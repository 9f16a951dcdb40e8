"""Properties of landmark_ssl.losses on fresh random inputs."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_ssl import geometry, losses


def test_landmark_loss_known_answer_and_masking(fresh_seed):
  rng = np.random.default_rng([fresh_seed, 0])
  n, k = 5, 7
  pred = rng.normal(size=(n, k, 2)).astype(np.float32) * 5
  target = rng.normal(size=(n, k, 2)).astype(np.float32) * 5
  visible = (rng.random((n, k)) > 0.3).astype(np.float32)
  visible[0] = 1.0
  has = np.array([1, 0, 1, 1, 0], np.float32)
  # Hand computation.
  per = []
  for b in range(n):
    if has[b] and visible[b].sum():
      d = ((pred[b] - target[b]) ** 2).sum(-1)
      per.append((d * visible[b]).sum() / visible[b].sum())
  expected = np.mean(per)
  got = losses.landmark_loss(pred, target, visible, has)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Masked points are ignored, even when their targets are garbage.
  target2 = target.copy()
  target2[visible == 0] = np.nan
  target2[has == 0] = 1e9
  np.testing.assert_allclose(losses.landmark_loss(pred, target2, visible, has),
                             expected, rtol=1e-5)
  g = jax.grad(lambda p: losses.landmark_loss(p, target2, visible, has))(pred)
  assert np.all(np.isfinite(g))
  assert np.all(np.asarray(g)[visible == 0] == 0)
  assert np.all(np.asarray(g)[has == 0] == 0)
  # Unmasked default equals the plain mean of squared distances.
  np.testing.assert_allclose(losses.landmark_loss(pred, target),
                             ((pred - target) ** 2).sum(-1).mean(), rtol=1e-5)


def test_losses_are_zero_without_anything_to_average(fresh_key):
  pred = jax.random.normal(fresh_key(0), (3, 4, 2))
  zero = jnp.zeros((3,))
  assert float(losses.landmark_loss(pred, pred + 1, has_landmarks=zero)) == 0.0
  g = jax.grad(lambda p: losses.landmark_loss(p, p * 0 + 3, has_landmarks=zero))(pred)
  assert np.all(np.asarray(g) == 0)
  a = geometry.identity_affine((3,))
  assert float(losses.equivariance_loss(pred, pred + 1, a, mask=zero)) == 0.0
  logits = jax.random.normal(fresh_key(1), (3, 5))
  assert float(losses.classification_loss(logits, jnp.array([0, 1, 2]), zero)) == 0.0


def test_classification_loss_matches_log_softmax_and_mask(fresh_key):
  logits = jax.random.normal(fresh_key(0), (6, 4)) * 3
  labels = jnp.array([0, 3, 1, 2, 2, 0])
  mask = jnp.array([1, 1, 0, 1, 0, 1.0])
  p = jax.nn.softmax(logits)
  nll = -jnp.log(p[jnp.arange(6), labels])
  np.testing.assert_allclose(losses.classification_loss(logits, labels),
                             nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(losses.classification_loss(logits, labels, mask),
                             (nll * mask).sum() / mask.sum(), rtol=1e-5)


def test_heatmap_loss_is_pixel_nll_of_the_rounded_target(fresh_key):
  n, h, w, k = 2, 9, 12, 3
  maps = jax.random.normal(fresh_key(0), (n, h, w, k))
  target = jax.random.uniform(fresh_key(1), (n, k, 2)) * jnp.array([w - 1, h - 1])
  logp = jax.nn.log_softmax(maps.reshape(n, h * w, k), axis=1).reshape(n, h, w, k)
  r = np.round(np.asarray(target[..., 1])).astype(int)
  c = np.round(np.asarray(target[..., 0])).astype(int)
  expected = -np.mean([logp[b, r[b, j], c[b, j], j] for b in range(n) for j in range(k)])
  np.testing.assert_allclose(losses.heatmap_landmark_loss(maps, target), expected,
                             rtol=1e-5)


def test_equivariance_loss_zero_for_equivariant_function_positive_otherwise(
    fresh_key):
  """An exactly equivariant landmark function: the intensity-weighted
  centroid of each channel, computed on images and on their warps."""
  h = w = 48
  key_a, key_q = jax.random.split(fresh_key(11))
  q = jax.random.uniform(key_q, (4, 3, 2), minval=18.0, maxval=30.0)
  ii, jj = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
  imgs = jnp.exp(-((jj[None, ..., None] - q[:, None, None, :, 0]) ** 2 +
                   (ii[None, ..., None] - q[:, None, None, :, 1]) ** 2) / 4.5)

  def centroid(x):
    s = x.sum((1, 2))
    return jnp.stack([(x * jj[None, ..., None]).sum((1, 2)) / s,
                      (x * ii[None, ..., None]).sum((1, 2)) / s], -1)

  a = geometry.random_affine(key_a, 4, dict(rotation=30.0, scale=0.1,
                                            translation=0.05), (h, w))
  l0 = centroid(imgs)
  l1 = centroid(geometry.warp_affine(imgs, a))
  assert float(losses.equivariance_loss(l0, l1, a)) < 0.02
  # A non-equivariant function (ignores the image) pays the squared distance
  # each point should have moved: 3**2 + 2**2 under a shift of (3, -2). (Under
  # the random transforms, a point near the centre moved too little to test.)
  point = jax.random.uniform(fresh_key(12), (2,), maxval=48.0)
  const = jnp.broadcast_to(point, l0.shape)
  shift = geometry.identity_affine((4,)).at[
      :, :, 2].set(jnp.array([3.0, -2.0]))
  np.testing.assert_allclose(losses.equivariance_loss(const, const, shift),
                             13.0, rtol=1e-5)
  # Hand computation of the formula.
  moved = geometry.transform_points(l0, a)
  np.testing.assert_allclose(losses.equivariance_loss(l0, l1 + 1.0, a),
                             jnp.mean(jnp.sum((moved - l1 - 1.0) ** 2, -1)),
                             rtol=1e-5)


@pytest.mark.parametrize("stop", ["none", "original", "warped"])
def test_equivariance_loss_stop_gradient_keeps_the_value_and_drops_one_branch(
    stop, fresh_key):
  """Same cost in every mode; the stopped branch gets exactly zero gradient
  and the other the hand-derived one: d/dl1 = -2 (T l0 - l1) m / (K sum m),
  d/dl0 = T's linear part transposed applied to minus that."""
  n, k = 6, 4
  k0, k1, ka, km = jax.random.split(fresh_key(5), 4)
  l0 = jax.random.uniform(k0, (n, k, 2), minval=5.0, maxval=40.0)
  l1 = jax.random.uniform(k1, (n, k, 2), minval=5.0, maxval=40.0)
  a = geometry.random_affine(ka, n, dict(rotation=90.0, scale=0.2,
                                         translation=0.1), (48, 48))
  mask = (jax.random.uniform(km, (n,)) > 0.4).astype(jnp.float32).at[0].set(1.0)
  cost = lambda x0, x1: losses.equivariance_loss(x0, x1, a, mask, stop_gradient=stop)
  np.testing.assert_allclose(cost(l0, l1), losses.equivariance_loss(l0, l1, a, mask),
                             rtol=1e-6)
  g0, g1 = jax.grad(cost, argnums=(0, 1))(l0, l1)
  resid = geometry.transform_points(l0, a) - l1
  want1 = -2.0 * resid * mask[:, None, None] / (k * mask.sum())
  want0 = -jnp.einsum("nji,nkj->nki", a[:, :, :2], want1)
  np.testing.assert_allclose(g1, 0.0 if stop == "warped" else want1, atol=1e-6)
  np.testing.assert_allclose(g0, 0.0 if stop == "original" else want0, atol=1e-6)
  assert float(jnp.abs(want0).max()) > 1e-3 and float(jnp.abs(want1).max()) > 1e-3


def test_equivariance_loss_rejects_an_unknown_stop_gradient():
  x = jnp.ones((2, 3, 2))
  with pytest.raises(ValueError, match="stop_gradient='both'.*none"):
    losses.equivariance_loss(x, x, geometry.identity_affine((2,)), stop_gradient="both")


def test_weight_decay_counts_kernels_only():
  params = {"conv0": {"kernel": jnp.full((3, 3, 1, 2), 2.0), "bias": jnp.ones(2)},
            "head": {"out": {"kernel": jnp.full((4, 5), 1.0), "bias": jnp.ones(5)},
                     "scale": jnp.ones(3)}}
  np.testing.assert_allclose(losses.weight_decay(params), 18 * 4.0 + 20 * 1.0)


def test_importing_losses_loads_no_data_or_checkpoint_library():
  code = ("import sys, landmark_ssl.losses; "
          "bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'grain', "
          "'orbax', 'orbax.checkpoint', 'flax') if m in sys.modules]; "
          "print(bad); sys.exit(1 if bad else 0)")
  res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert res.returncode == 0, res.stdout + res.stderr


def test_landmark_mean_over_all_images_is_eq3_as_written():
  """'all': the sum over labelled images divided by every image of the set
  (those without labels add zero); 'labeled' divides by the labelled ones."""
  rng = np.random.default_rng()
  n, k = 9, 4
  pred = rng.normal(size=(n, k, 2)).astype(np.float32) * 4
  target = rng.normal(size=(n, k, 2)).astype(np.float32) * 4
  visible = np.ones((n, k), np.float32)
  has = (rng.random(n) > 0.5).astype(np.float32)
  has[0], has[1] = 1.0, 0.0
  mask = np.ones((n,), np.float32)
  mask[-1] = 0.0  # padding: not an image of the set
  per = ((pred - target) ** 2).sum(-1).mean(-1)
  used = has * mask
  literal = (per * used).sum() / mask.sum()
  np.testing.assert_allclose(
      losses.landmark_loss(pred, target, visible, used, mask, "all"), literal,
      rtol=1e-5)
  labeled = losses.landmark_loss(pred, target, visible, used, mask)
  np.testing.assert_allclose(labeled, (per * used).sum() / used.sum(),
                             rtol=1e-5)
  # The two differ by exactly the labelled share of the set.
  np.testing.assert_allclose(
      losses.landmark_loss(pred, target, visible, used, mask, "all"),
      labeled * used.sum() / mask.sum(), rtol=1e-5)
  # Heatmap cost: same averaging.
  maps = jnp.asarray(rng.normal(size=(n, 8, 8, k)), jnp.float32)
  pix = jnp.asarray(rng.uniform(0, 7, (n, k, 2)), jnp.float32)
  lab = losses.heatmap_landmark_loss(maps, pix, visible, used, mask)
  np.testing.assert_allclose(
      losses.heatmap_landmark_loss(maps, pix, visible, used, mask, "all"),
      lab * used.sum() / mask.sum(), rtol=1e-5)
  with pytest.raises(ValueError, match="mean_over='some'"):
    losses.landmark_loss(pred, target, mean_over="some")
