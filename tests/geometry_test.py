"""Properties of landmark_ssl.geometry on fresh random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_ssl import geometry


def _random_affines(key, n, h, w, rot=30.0, scale=0.2, tr=0.1):
  return geometry.random_affine(key, n, dict(rotation=rot, scale=scale,
                                             translation=tr), (h, w))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soft_argmax_of_one_hot_is_the_peak_in_xy(seed, fresh_seed):
  rng = np.random.default_rng([fresh_seed, seed])
  n, h, w, k = 3, 17, 23, 4  # non-square so x/y mix-ups fail
  rows = rng.integers(0, h, (n, k))
  cols = rng.integers(0, w, (n, k))
  maps = rng.normal(size=(n, h, w, k)).astype(np.float32) * 0.1
  for b in range(n):
    for j in range(k):
      maps[b, rows[b, j], cols[b, j], j] = 10.0
  pts = geometry.soft_argmax(jnp.asarray(maps), beta=100.0)
  assert pts.shape == (n, k, 2)
  np.testing.assert_allclose(pts[..., 0], cols, atol=1e-3)
  np.testing.assert_allclose(pts[..., 1], rows, atol=1e-3)
  np.testing.assert_array_equal(geometry.hard_argmax(jnp.asarray(maps)),
                                np.stack([cols, rows], -1))


def test_soft_argmax_matches_explicit_expectation(fresh_key):
  key = fresh_key(3)
  maps = jax.random.normal(key, (2, 9, 11, 3))
  beta = 0.7
  p = jax.nn.softmax(beta * maps.reshape(2, 99, 3), axis=1).reshape(2, 9, 11, 3)
  ii, jj = np.meshgrid(np.arange(9), np.arange(11), indexing="ij")
  x = jnp.einsum("nhwk,hw->nk", p, jj.astype(np.float32))
  y = jnp.einsum("nhwk,hw->nk", p, ii.astype(np.float32))
  np.testing.assert_allclose(geometry.soft_argmax(maps, beta),
                             jnp.stack([x, y], -1), rtol=1e-5, atol=1e-5)


def test_soft_argmax_is_stable_for_large_beta_and_has_finite_gradients(
    fresh_key):
  maps = jax.random.normal(fresh_key(0), (2, 13, 13, 5)) * 50.0
  pts = geometry.soft_argmax(maps, beta=1e4)
  assert np.all(np.isfinite(pts))
  g = jax.grad(lambda m: jnp.sum(geometry.soft_argmax(m, 2.0) ** 2))(maps / 50.0)
  assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0
  g_big = jax.grad(lambda m: jnp.sum(geometry.soft_argmax(m, 1e4)))(maps)
  assert np.all(np.isfinite(g_big))


def test_compose_and_invert(fresh_key):
  k1, k2, k3 = jax.random.split(fresh_key(5), 3)
  a = _random_affines(k1, 4, 40, 50)
  b = _random_affines(k2, 4, 40, 50)
  pts = jax.random.uniform(k3, (4, 7, 2)) * 50
  ab = geometry.compose_affine(a, b)
  np.testing.assert_allclose(
      geometry.transform_points(pts, ab),
      geometry.transform_points(geometry.transform_points(pts, b), a),
      rtol=1e-5, atol=1e-3)
  back = geometry.transform_points(
      geometry.transform_points(pts, a), geometry.invert_affine(a))
  np.testing.assert_allclose(back, pts, atol=1e-3)
  np.testing.assert_allclose(
      geometry.compose_affine(a, geometry.invert_affine(a)),
      geometry.identity_affine((4,)), atol=1e-5)


def test_affine_about_center_keeps_the_center_fixed_and_rotates_clockwise():
  c = geometry.image_center(31, 41)
  a = geometry.affine_about_center(jnp.pi / 2, 1.7, jnp.zeros(2), c)
  np.testing.assert_allclose(geometry.transform_points(c[None], a), c[None],
                             atol=1e-4)
  # +x direction goes to +y (down on screen) for a positive angle.
  moved = geometry.transform_points((c + jnp.array([1.0, 0.0]))[None], a)
  np.testing.assert_allclose(moved[0] - c, [0.0, 1.7], atol=1e-4)


def test_random_affine_respects_ranges(fresh_key):
  a = geometry.random_affine(fresh_key(1), 500,
                             dict(rotation=20.0, scale=0.1, translation=0.1),
                             (60, 80))
  lin = a[:, :, :2]
  scale = jnp.sqrt(jnp.abs(jnp.linalg.det(lin)))
  angle = jnp.degrees(jnp.arctan2(lin[:, 1, 0], lin[:, 0, 0]))
  assert float(scale.min()) >= 0.9 - 1e-5 and float(scale.max()) <= 1.1 + 1e-5
  assert float(jnp.abs(angle).max()) <= 20.0 + 1e-3
  assert float(jnp.abs(angle).max()) > 15.0  # the range is actually used
  shift = geometry.transform_points(geometry.image_center(60, 80)[None], a)[:, 0]
  shift = shift - geometry.image_center(60, 80)
  assert float(jnp.abs(shift[:, 0]).max()) <= 8.0 + 1e-4
  assert float(jnp.abs(shift[:, 1]).max()) <= 6.0 + 1e-4
  with pytest.raises(ValueError, match="rotate"):
    geometry.random_affine(fresh_key(0), 2, dict(rotate=1.0), (8, 8))


def test_warp_with_identity_is_identity(fresh_key):
  img = jax.random.uniform(fresh_key(2), (3, 19, 23, 2))
  out = geometry.warp_affine(img, geometry.identity_affine((3,)))
  np.testing.assert_allclose(out, img, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_warp_moves_a_bright_dot_to_transform_points(seed, fresh_key):
  h, w = 48, 56
  key_a, key_q = jax.random.split(fresh_key(seed))
  a = _random_affines(key_a, 6, h, w, rot=45.0, scale=0.2, tr=0.1)
  # Dots well inside so they stay in the image after the transform.
  q = jax.random.uniform(key_q, (6, 2), minval=18.0, maxval=30.0)
  ii, jj = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
  # A small Gaussian blob: its intensity-weighted centroid is well defined.
  blob = jnp.exp(-((jj[None] - q[:, None, None, 0]) ** 2 +
                   (ii[None] - q[:, None, None, 1]) ** 2) / (2 * 1.5 ** 2))
  out = geometry.warp_affine(blob[..., None], a)[..., 0]
  wsum = out.sum(axis=(1, 2))
  centroid = jnp.stack([(out * jj).sum((1, 2)) / wsum,
                        (out * ii).sum((1, 2)) / wsum], -1)
  expected = geometry.transform_points(q[:, None], a)[:, 0]
  np.testing.assert_allclose(centroid, expected, atol=0.15)


def test_warp_then_inverse_warp_recovers_the_interior(fresh_key):
  h, w = 40, 40
  key_i, key_a = jax.random.split(fresh_key(7))
  # Smooth random image (bilinear resampling is exact on linear functions).
  coarse = jax.random.uniform(key_i, (2, 5, 5, 3))
  img = jax.image.resize(coarse, (2, h, w, 3), "cubic")
  a = _random_affines(key_a, 2, h, w, rot=25.0, scale=0.1, tr=0.05)
  back = geometry.warp_affine(geometry.warp_affine(img, a),
                              geometry.invert_affine(a))
  inner = slice(12, 28)
  err = jnp.abs(back - img)[:, inner, inner]
  # Two resamplings' error, over 50,000 seeds: mean up to 0.0053, max up to
  # 0.037; a half-pixel error in the inverse gives a mean of 0.0104 or more.
  assert float(err.mean()) < 0.0075 and float(err.max()) < 0.05
  assert float(jnp.abs(img[:, inner, inner] - img.mean()).max()) > 0.05


def test_warp_is_differentiable_in_image_and_transform(fresh_key):
  # A smooth image, zero at the border: bilinear sampling is only piecewise
  # linear, and a rough image would make the finite difference cross kinks.
  window = np.outer(np.hanning(16), np.hanning(16))[None, :, :, None]
  img = jax.image.resize(jax.random.uniform(fresh_key(0), (2, 4, 4, 1)),
                         (2, 16, 16, 1), "cubic") * window
  a = _random_affines(fresh_key(1), 2, 16, 16)

  def f(img, a):
    return jnp.sum(geometry.warp_affine(img, a) * jnp.arange(16.0)[None, :, None, None])

  gi, ga = jax.grad(f, argnums=(0, 1))(img, a)
  assert np.all(np.isfinite(gi)) and np.abs(gi).sum() > 0
  assert np.all(np.isfinite(ga)) and np.abs(ga).sum() > 0
  # The gradient w.r.t. A agrees with a finite difference along a random
  # direction (over 50,000 seeds: within 2% of the gradient's norm; a step
  # of 1e-2 moved samples across bilinear kinks, 5% off once in 17,000).
  d = jax.random.normal(fresh_key(2), a.shape)
  d = d / jnp.linalg.norm(d)
  eps = 1e-3
  fd = (f(img, a + eps * d) - f(img, a - eps * d)) / (2 * eps)
  assert abs(float(jnp.sum(ga * d) - fd)) < 0.05 * float(jnp.linalg.norm(ga))


def test_warp_out_shape(fresh_key):
  img = jax.random.uniform(fresh_key(0), (2, 10, 12, 3))
  out = geometry.warp_affine(img, geometry.identity_affine(), out_shape=(5, 7))
  assert out.shape == (2, 5, 7, 3)
  np.testing.assert_allclose(out, img[:, :5, :7], atol=1e-6)
