"""Properties of data_builders.crop on fresh random inputs."""

import numpy as np
import pytest

from data_builders import crop, dot_images


def test_crop_affine_maps_box_edges_to_crop_edges():
  rng = np.random.default_rng()
  center = rng.uniform(-50, 300, 2)
  side = rng.uniform(5, 400)
  size = int(rng.integers(16, 129))
  a = crop.crop_affine(center, side, size)
  corners = center + np.array([[-1, -1], [1, 1], [-1, 1]]) * side / 2
  np.testing.assert_allclose(
      crop.apply_affine(corners, a),
      [[-0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]], atol=1e-9)
  np.testing.assert_allclose(crop.apply_affine(center, a),
                             [(size - 1) / 2] * 2, atol=1e-9)


def test_square_box_encloses_visible_points_only():
  rng = np.random.default_rng()
  pts = rng.uniform(0, 100, (20, 2))
  visible = (rng.uniform(size=20) < 0.7).astype(np.float32)
  visible[0] = 1.0
  pts[visible == 0] += 1000.0  # far away: must not shape the box
  enlarge = rng.uniform(1.0, 2.0)
  center, side = crop.square_box(pts, visible, enlarge)
  vis = pts[visible > 0]
  np.testing.assert_allclose(center, (vis.min(0) + vis.max(0)) / 2)
  assert side == pytest.approx(np.ptp(vis, axis=0).max() * enlarge)


def test_identity_warp_returns_the_image():
  rng = np.random.default_rng()
  img = rng.integers(0, 256, (23, 31), dtype=np.uint8)
  out = crop.warp_image(img, np.eye(2, 3), (23, 31))
  np.testing.assert_array_equal(out, img)


def test_integer_shift_moves_pixels_exactly():
  rng = np.random.default_rng()
  img = rng.integers(1, 256, (20, 20, 3), dtype=np.uint8)
  dx, dy = int(rng.integers(1, 5)), int(rng.integers(1, 5))
  out = crop.warp_image(img, np.array([[1.0, 0, dx], [0, 1.0, dy]]), 20)
  np.testing.assert_array_equal(out[dy:, dx:], img[:20 - dy, :20 - dx])
  # Rows/columns that come from outside the image are zero-padded.
  assert (out[:dy] == 0).all() and (out[:, :dx] == 0).all()


@pytest.mark.parametrize("zoom", [0.3, 0.45, 0.7, 1.5, 3.0])
def test_landmarks_stay_on_their_dots_after_crop_and_resize(zoom):
  """Render dots at random landmarks, crop, and find each dot again at the
  transformed landmark. ``zoom`` = crop pixels per original pixel: zoom in,
  zoom out (below 0.5: the box-filter path), boxes that stick out of the
  image (zero padding)."""
  rng = np.random.default_rng()
  out_size = int(rng.integers(48, 97))
  # Dots of >= 0.8 original pixels (resolved in the original image) and >= 1
  # output pixel; the centroid window must hold the whole dot (2.5 sigma)
  # and no neighbour.
  sigma_out = max(1.0, 0.8 * zoom)
  # The outermost dots sit (1 - 1/enlarge) / 2 of the crop from its border:
  # room for 3 sigma (the jittered grid's zoom can be ~25% above plan), so
  # they count as wholly inside and a grid of 4 has dots to measure.
  lowest = 1.0 / (1.0 - 2.0 * (3.0 * 1.3 * sigma_out + 1.0) / out_size)
  enlarge = float(rng.uniform(max(1.2, lowest), 2.0))
  radius = int(np.ceil(2.5 * sigma_out))  # planned centroid window
  extent_out = 0.9 * out_size / enlarge  # landmarks' span in the crop
  cols = int(extent_out // (2 * radius + 2)) + 1
  k = int(rng.integers(min(4, cols * cols), cols * cols + 1))
  extent = out_size / (enlarge * zoom)  # landmarks' span in the original
  sigma = sigma_out / zoom
  pts = dot_images.grid_points(k, (0.0, 0.0), extent * 0.9, rng, jitter=0.1)
  margin = np.abs(pts).max() + 4 * sigma  # jittered half-span plus the dot
  h = int(2 * margin * rng.uniform(1.0, 1.5)) + 2
  w = int(2 * margin * rng.uniform(1.0, 1.5)) + 2
  # Anywhere the whole grid fits: the enlarged square then often sticks out
  # of the image (zero padding).
  center = (rng.uniform(margin, w - 1 - margin),
            rng.uniform(margin, h - 1 - margin))
  pts = pts + np.asarray(center)
  image = dot_images.render_dots((h, w), pts, sigma)
  result = crop.crop_around_landmarks(image, pts, None, out_size, enlarge)
  assert result.image.shape == (out_size, out_size)
  np.testing.assert_allclose(result.landmarks,
                             crop.apply_affine(pts, result.affine), atol=1e-3)
  # Measure every dot that lies wholly inside the crop (dots cut by the crop
  # border have a biased centroid); with the actual zoom of the crop.
  sigma_crop = sigma * float(result.affine[0, 0])
  radius = int(np.ceil(2.5 * sigma_crop))
  inside = ((result.landmarks >= 3 * sigma_crop)
            & (result.landmarks <= out_size - 1 - 3 * sigma_crop)).all(-1)
  assert inside.sum() >= 1
  found = dot_images.dot_centroids(result.image, result.landmarks[inside],
                                   radius)
  err = np.linalg.norm(found - result.landmarks[inside], axis=-1)
  assert not np.isnan(err).any()
  assert err.max() < 0.25, (zoom, err.max())


def test_outside_of_the_image_is_black():
  img = np.full((10, 10), 200, np.uint8)
  pts = np.array([[0.0, 0.0], [9.0, 9.0]])
  result = crop.crop_around_landmarks(img, pts, None, 40, 2.0)
  # Square side 18 centred on (4.5, 4.5): the image covers the middle half.
  assert (result.image[:8] == 0).all() and (result.image[-8:] == 0).all()
  assert (result.image[15:25, 15:25] == 200).all()


def test_strong_shrink_does_not_alias():
  """A one-pixel checkerboard shrunk 3-6x must come out flat mid-grey (its
  local mean), not as the moire that point sampling gives."""
  rng = np.random.default_rng()
  n = int(rng.integers(120, 200))
  board = ((np.indices((n, n)).sum(0) % 2) * 255).astype(np.uint8)
  out_size = int(n / rng.uniform(3.0, 6.0))
  result = crop.crop_around_landmarks(
      board, np.array([[0.0, 0.0], [n - 1.0, n - 1.0]]), None, out_size, 1.0)
  inner = result.image[2:-2, 2:-2].astype(np.float64)
  assert np.abs(inner - 127.5).max() < 40, np.abs(inner - 127.5).max()
