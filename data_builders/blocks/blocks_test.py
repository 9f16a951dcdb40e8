"""The Blocks builder: a `small` build, checked against the figure geometry."""

import numpy as np
import pytest

from data_builders import synthetic
from data_builders.blocks import blocks_dataset_builder as blocks

NUM_CLASSES = len(blocks.FIGURES)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  builder = blocks.Blocks(config="small",
                          data_dir=tmp_path_factory.mktemp("tfds"))
  builder.download_and_prepare()
  return builder


def _read_split(builder, split):
  source = builder.as_data_source(split=split)
  examples = [source[i] for i in range(len(source))]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def _procrustes(a, b):
  """Full Procrustes distance between ordered 2-D configurations: 0 iff one
  is a rotated, scaled and shifted copy of the other (no reflection)."""
  za = a[:, 0] + 1j * a[:, 1]
  zb = b[:, 0] + 1j * b[:, 1]
  za = za - za.mean()
  zb = zb - zb.mean()
  za = za / np.linalg.norm(za)
  zb = zb / np.linalg.norm(zb)
  return np.sqrt(max(0.0, 1.0 - abs(np.vdot(za, zb)) ** 2))


def _centroid(image):
  img = image[..., 0].astype(np.float64)
  ii, jj = np.mgrid[:img.shape[0], :img.shape[1]]
  return np.array([(img * jj).sum(), (img * ii).sum()]) / img.sum()


@pytest.mark.parametrize("split", synthetic.SPLITS)
def test_features_sizes_and_balance(built, split):
  data = _read_split(built, split)
  n = 150
  assert data["image"].shape == (n, 60, 60, 1)
  assert data["image"].dtype == np.uint8
  assert data["landmarks"].shape == (n, 5, 2)
  assert data["landmarks"].dtype == np.float32
  np.testing.assert_array_equal(data["visible"], np.ones((n, 5)))
  np.testing.assert_array_equal(data["normalizer"], np.ones(n))
  np.testing.assert_array_equal(data["crop"],
                                np.broadcast_to(np.eye(2, 3), (n, 2, 3)))
  assert data["id"][7] == f"{split}_00007".encode()
  counts = np.bincount(data["label"], minlength=NUM_CLASSES)
  np.testing.assert_array_equal(counts, np.full(NUM_CLASSES, n // NUM_CLASSES))
  assert built.info.features["label"].num_classes == NUM_CLASSES
  assert built.info.splits[split].num_examples == n


def test_stored_examples_regenerate_from_the_seed(built):
  source = built.as_data_source(split="validation")
  rng = np.random.default_rng()
  for i in rng.choice(len(source), 5, replace=False):
    again = blocks.make_example(synthetic.example_rng(0, "validation", i), i)
    np.testing.assert_array_equal(source[i]["image"], again["image"])
    np.testing.assert_array_equal(source[i]["landmarks"], again["landmarks"])
    assert source[i]["label"] == again["label"]
  other = blocks.make_example(synthetic.example_rng(1, "validation", 0), 0)
  assert not np.array_equal(other["landmarks"], source[0]["landmarks"])


def test_landmarks_sit_on_the_squares_of_the_figure(built):
  data = _read_split(built, "train")
  lm = data["landmarks"]
  # Square centres are at least 4.8/2 px inside a square: fully white pixels.
  rows = np.round(lm[..., 1]).astype(int)
  cols = np.round(lm[..., 0]).astype(int)
  values = data["image"][np.arange(len(lm))[:, None], rows, cols, 0]
  assert values.min() >= 250
  # Consecutive squares are one grid pitch apart, within the scale range.
  pitch = np.linalg.norm(np.diff(lm, axis=1), axis=-1)
  np.testing.assert_allclose(pitch, pitch[:, :1] * np.ones((1, 4)), rtol=1e-4)
  assert pitch.min() >= blocks.PITCH_RANGE[0] - 1e-3
  assert pitch.max() <= blocks.PITCH_RANGE[1] + 1e-3
  # The rendered area is that of 5 squares and one triangle at this pitch
  # (PIL fills boundary pixels: a few percent more).
  side = blocks.SQUARE_SIDE
  area = pitch[:, 0] ** 2 * (5 * side ** 2 + side * blocks.TRIANGLE_HEIGHT / 2)
  np.testing.assert_allclose(data["image"].sum(axis=(1, 2, 3)) / 255, area,
                             rtol=0.08)
  # Fully inside: nothing on the border rows and columns.
  border = np.concatenate([data["image"][:, 0], data["image"][:, -1],
                           data["image"][:, :, 0], data["image"][:, :, -1]])
  assert border.max() == 0


def test_each_class_keeps_its_landmark_configuration(built):
  data = _read_split(built, "test")
  for label in range(NUM_CLASSES):
    _, _, centres = blocks.figure(label)
    for lm in data["landmarks"][data["label"] == label]:
      assert _procrustes(lm.astype(np.float64), centres) < 2e-3  # float32


def test_no_two_classes_match_under_rotation_and_scale():
  rng = np.random.default_rng()
  configs = []
  for label in range(NUM_CLASSES):
    _, _, centres = blocks.figure(label)
    configs.append(blocks.place(centres, rng.uniform(6, 9),
                                rng.uniform(0, 360), rng.uniform(10, 50, 2)))
  for a in range(NUM_CLASSES):
    for b in range(a + 1, NUM_CLASSES):
      assert _procrustes(configs[a], configs[b]) > 0.3, (
          blocks.FIGURES[a], blocks.FIGURES[b])


def test_triangle_is_at_the_head():
  for label in range(NUM_CLASSES):
    _, triangle, centres = blocks.figure(label)
    dist = np.linalg.norm(centres - triangle.mean(axis=0), axis=-1)
    assert np.argmin(dist) == 0
    assert np.all(dist[1:] > dist[0] + 0.9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rendered_square_centroid_is_its_landmark(seed):
  """Guards the half-pixel convention of the renderer: each square rendered
  alone has its intensity centroid at its landmark."""
  rng = np.random.default_rng(seed)
  label = int(rng.integers(NUM_CLASSES))
  squares, _, centres = blocks.figure(label)
  pitch = rng.uniform(*blocks.PITCH_RANGE)
  angle = rng.uniform(0, 360)
  shift = rng.uniform(25, 35, 2)
  squares_px = blocks.place(squares, pitch, angle, shift)
  centres_px = blocks.place(centres, pitch, angle, shift)
  for square, centre in zip(squares_px, centres_px):
    image = synthetic.render_polygons([square])
    np.testing.assert_allclose(_centroid(image), centre, atol=0.1)
