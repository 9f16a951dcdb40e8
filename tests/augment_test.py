"""landmark_ssl.augment: landmarks follow the image, invisibility, rectangles."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_ssl import augment, geometry

H, W = 48, 56  # non-square so x/y mix-ups fail
SIGMA = 1.2


def _dot_batch(rng, n, k):
  """Images with a Gaussian dot at each of k random, well separated points."""
  points = np.zeros((n, k, 2), np.float32)
  for b in range(n):
    chosen = []
    while len(chosen) < k:
      p = rng.uniform([14, 14], [W - 15, H - 15])
      if all(np.linalg.norm(p - q) > 12 for q in chosen):
        chosen.append(p)
    points[b] = chosen
  ii, jj = np.mgrid[:H, :W]
  d2 = ((jj[None, None] - points[..., 0, None, None]) ** 2 +
        (ii[None, None] - points[..., 1, None, None]) ** 2)
  images = np.exp(-d2 / (2 * SIGMA ** 2)).sum(axis=1)[..., None]
  return {
      "image": jnp.asarray(images, jnp.float32),
      "landmarks": jnp.asarray(points),
      "visible": jnp.ones((n, k), jnp.float32),
      "has_landmarks": jnp.asarray(rng.integers(0, 2, n), jnp.float32),
      "labels": {"label": jnp.asarray(rng.integers(0, 15, n), jnp.int32)},
  }


def _jit_augment(key, batch, cfg):
  return jax.jit(functools.partial(augment.augment, aug_config=cfg))(key, batch)


def _windowed_centroid(image, point, radius=5.0):
  ii, jj = np.mgrid[:image.shape[0], :image.shape[1]]
  weight = image[..., 0] * (((jj - point[0]) ** 2 + (ii - point[1]) ** 2)
                            <= radius ** 2)
  return np.array([(weight * jj).sum(), (weight * ii).sum()]) / weight.sum()


def test_landmarks_stay_on_their_dots():
  rng = np.random.default_rng()
  batch = _dot_batch(rng, 6, 3)
  cfg = dict(rotation=30.0, scale=0.15, translation=0.05)
  key = jax.random.PRNGKey(int(rng.integers(2 ** 31)))
  out = _jit_augment(key, batch, cfg)
  image, lm = np.asarray(out["image"]), np.asarray(out["landmarks"])
  assert not np.allclose(lm, batch["landmarks"], atol=0.5)  # it moved them
  checked = 0
  for b in range(6):
    for k in range(3):
      if out["visible"][b, k] and 6 <= lm[b, k].min() and lm[b, k, 0] <= W - 7 \
          and lm[b, k, 1] <= H - 7:
        np.testing.assert_allclose(_windowed_centroid(image[b], lm[b, k]),
                                   lm[b, k], atol=0.15)
        checked += 1
  assert checked >= 6  # of 18: most dots stay inside the frame
  # Entries the augmentation does not own pass through untouched.
  np.testing.assert_array_equal(out["labels"]["label"], batch["labels"]["label"])
  np.testing.assert_array_equal(out["has_landmarks"], batch["has_landmarks"])


def test_landmarks_leaving_the_image_become_invisible():
  rng = np.random.default_rng()
  n, k = 5, 7
  batch = _dot_batch(rng, n, 1)
  batch["landmarks"] = jnp.asarray(rng.uniform(0, [W - 1, H - 1], (n, k, 2)),
                                   jnp.float32)
  batch["visible"] = jnp.asarray(rng.integers(0, 2, (n, k)), jnp.float32)
  shift = 10.0
  a = geometry.affine_about_center(0.0, 1.0, jnp.array([shift, 0.0]),
                                   geometry.image_center(H, W))
  out = jax.jit(augment.apply_affine)(batch, jnp.broadcast_to(a, (n, 2, 3)))
  expected = np.asarray(batch["visible"]) * (
      np.asarray(batch["landmarks"])[..., 0] + shift <= W - 1)
  np.testing.assert_array_equal(out["visible"], expected)
  np.testing.assert_allclose(out["landmarks"][..., 0],
                             batch["landmarks"][..., 0] + shift, atol=1e-4)
  # Random transforms: visible only where it was and the point is inside.
  cfg = dict(rotation=40.0, scale=0.3, translation=0.3)
  out = _jit_augment(jax.random.PRNGKey(int(rng.integers(2 ** 31))), batch, cfg)
  lm = np.asarray(out["landmarks"])
  inside = ((lm[..., 0] >= 0) & (lm[..., 0] <= W - 1) &
            (lm[..., 1] >= 0) & (lm[..., 1] <= H - 1))
  np.testing.assert_array_equal(out["visible"],
                                np.asarray(batch["visible"]) * inside)
  assert (~inside).any() and inside.any()


def test_deterministic_in_the_key_and_different_across_keys():
  rng = np.random.default_rng()
  batch = _dot_batch(rng, 4, 2)
  cfg = dict(rotation=20.0, scale=0.1, translation=0.1, black_rectangles=3,
             rectangle_size=0.3)
  seed = int(rng.integers(2 ** 31))
  run = jax.jit(functools.partial(augment.augment, aug_config=cfg))
  a = run(jax.random.PRNGKey(seed), batch)
  b = run(jax.random.PRNGKey(seed), batch)
  c = run(jax.random.PRNGKey(seed + 1), batch)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.allclose(a["landmarks"], c["landmarks"])


@pytest.mark.parametrize("cfg", [{}, dict(rotation=0.0, scale=0.0,
                                          translation=0.0, black_rectangles=0,
                                          rectangle_size=0.0)])
def test_zero_settings_return_the_batch_unchanged(cfg):
  batch = _dot_batch(np.random.default_rng(), 2, 2)
  assert augment.augment(jax.random.PRNGKey(0), batch, cfg) is batch
  assert augment.is_identity(cfg)


def test_black_rectangles_only_blacken_pixels():
  rng = np.random.default_rng()
  n = 16
  batch = _dot_batch(rng, n, 3)
  batch["image"] = jnp.asarray(rng.uniform(0.1, 1.0, (n, H, W, 1)), jnp.float32)
  cfg = dict(black_rectangles=2, rectangle_size=0.4)
  out = _jit_augment(jax.random.PRNGKey(int(rng.integers(2 ** 31))), batch, cfg)
  np.testing.assert_array_equal(out["landmarks"], batch["landmarks"])
  np.testing.assert_array_equal(out["visible"], batch["visible"])
  before, after = np.asarray(batch["image"]), np.asarray(out["image"])
  changed = before != after
  np.testing.assert_array_equal(after[changed], 0.0)
  black = changed[..., 0].mean(axis=(1, 2))
  assert black.max() > 0.01  # some images got rectangles...
  assert black.max() <= 2 * 0.4 ** 2 + 0.05  # ...no larger than allowed
  # Each blackened region is a union of at most 2 axis-aligned boxes: the
  # black pixels of an image with one rectangle fill their bounding box.
  rects = augment.draw_rectangles(jax.random.PRNGKey(int(rng.integers(2 ** 31))),
                                  n, (H, W), 1, 0.4)
  painted = np.asarray(jax.jit(augment.paint_rectangles)(batch["image"], rects))
  for b in range(n):
    rows, cols = np.nonzero(painted[b, ..., 0] == 0)
    if rows.size:
      box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
      assert box == rows.size
      x0, y0, x1, y1 = np.asarray(rects[b, 0])
      assert cols.min() >= x0 and cols.max() <= x1
      assert rows.min() >= y0 and rows.max() <= y1


def test_bad_settings_name_the_setting():
  batch = _dot_batch(np.random.default_rng(), 1, 1)
  with pytest.raises(ValueError, match="rotaton"):
    augment.augment(jax.random.PRNGKey(0), batch, dict(rotaton=10.0))
  with pytest.raises(ValueError, match="rectangle_size"):
    augment.augment(jax.random.PRNGKey(0), batch, dict(black_rectangles=2))
