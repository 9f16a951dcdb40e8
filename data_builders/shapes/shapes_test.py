"""The Shapes builder: a `small` build, labels and landmarks recomputed."""

import numpy as np
import pytest

from data_builders import synthetic
from data_builders.shapes import shapes_dataset_builder as shapes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  builder = shapes.Shapes(config="small",
                          data_dir=tmp_path_factory.mktemp("tfds"))
  builder.download_and_prepare()
  return builder


def _read_split(builder, split):
  source = builder.as_data_source(split=split)
  examples = [source[i] for i in range(len(source))]
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def _centroid(image):
  img = image[..., 0].astype(np.float64)
  ii, jj = np.mgrid[:img.shape[0], :img.shape[1]]
  return np.array([(img * jj).sum(), (img * ii).sum()]) / img.sum()


@pytest.mark.parametrize("split", synthetic.SPLITS)
def test_features_labels_and_balance(built, split):
  data = _read_split(built, split)
  n = 150
  assert data["image"].shape == (n, 60, 60, 1)
  assert data["image"].dtype == np.uint8
  assert data["landmarks"].shape == (n, 2, 2)
  assert data["shape_size"].shape == (n, 2)
  np.testing.assert_array_equal(data["visible"], np.ones((n, 2)))
  np.testing.assert_array_equal(data["normalizer"], np.ones(n))
  assert data["id"][3] == f"{split}_00003".encode()
  # The label is the rule applied to the stored landmarks, never ambiguous.
  np.testing.assert_array_equal(data["label"],
                                shapes.label_of(data["landmarks"]))
  dist = np.linalg.norm(data["landmarks"], axis=-1)
  assert np.abs(dist[:, 0] - dist[:, 1]).min() >= shapes.LABEL_MARGIN - 1e-3
  np.testing.assert_array_equal(np.bincount(data["label"]), [n // 2, n // 2])


def test_label_rule_on_known_answers():
  tri_near = np.array([[5.0, 5.0], [40.0, 40.0]])
  sq_near = np.array([[50.0, 2.0], [20.0, 30.0]])  # 50.04 vs 36.06
  np.testing.assert_array_equal(shapes.label_of(np.stack([tri_near, sq_near])),
                                [0, 1])


def test_landmarks_on_shapes_and_areas_match_sizes(built):
  data = _read_split(built, "train")
  lm, radii = data["landmarks"], data["shape_size"]
  rows = np.round(lm[..., 1]).astype(int)
  cols = np.round(lm[..., 0]).astype(int)
  values = data["image"][np.arange(len(lm))[:, None], rows, cols, 0]
  assert values.min() >= 250  # the inradius is >= 2 px: a fully white pixel
  assert radii.min() >= shapes.RADIUS_RANGE[0]
  assert radii.max() <= shapes.RADIUS_RANGE[1]
  # Non-overlapping shapes: the total area is the sum of both areas.
  area = 3 * np.sqrt(3) / 4 * radii[:, 0] ** 2 + 2 * radii[:, 1] ** 2
  np.testing.assert_allclose(data["image"].sum(axis=(1, 2, 3)) / 255, area,
                             rtol=0.1)
  gap = np.linalg.norm(lm[:, 0] - lm[:, 1], axis=-1) - radii.sum(axis=1)
  assert gap.min() >= shapes.GAP - 1e-3


def test_stored_examples_regenerate_from_the_seed(built):
  source = built.as_data_source(split="test")
  for i in np.random.default_rng().choice(len(source), 4, replace=False):
    again = shapes.make_example(synthetic.example_rng(0, "test", i), i)
    np.testing.assert_array_equal(source[i]["image"], again["image"])
    np.testing.assert_array_equal(source[i]["landmarks"], again["landmarks"])
    np.testing.assert_array_equal(source[i]["shape_size"], again["shape_size"])


@pytest.mark.parametrize("sides", [3, 4])
def test_rendered_shape_centroid_is_its_landmark(sides):
  rng = np.random.default_rng()
  for _ in range(5):
    centre = rng.uniform(12, 48, 2)
    poly = shapes.regular_polygon(centre, rng.uniform(*shapes.RADIUS_RANGE),
                                  sides, rng.uniform(0, 360))
    image = synthetic.render_polygons([poly])
    np.testing.assert_allclose(_centroid(image), centre, atol=0.1)
