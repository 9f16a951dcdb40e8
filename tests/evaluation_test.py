"""Tests of landmark_ssl.evaluation against numbers computed another way."""

import numpy as np
import pytest

from landmark_ssl import evaluation


def _faces(rng, n=5, k=68):
  return rng.uniform(0, 64, size=(n, k, 2))


def test_auc_matches_numerical_integral_of_ced(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  errors = rng.uniform(0, 0.15, size=37)
  t = 0.08
  # Riemann sum of the empirical CDF on a very fine grid.
  grid = np.linspace(0, t, 200001)
  cdf = (errors[None, :] <= grid[:, None]).mean(axis=1)
  numeric = np.trapezoid(cdf, grid) / t
  assert evaluation.auc(errors, t) == pytest.approx(numeric, abs=1e-5)


def test_auc_of_known_list():
  # Errors 0, 0.04, 0.2 with t = 0.08: per image 1, 0.5, 0 -> mean 0.5.
  assert evaluation.auc(np.array([0.0, 0.04, 0.2]), 0.08) == pytest.approx(0.5)


def test_failure_rate_and_ced_agree(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  errors = rng.uniform(0, 0.2, size=50)
  thresholds, fraction = evaluation.ced(errors, 0.2, 41)
  for t, f in zip(thresholds, fraction):
    assert f == pytest.approx(np.mean(errors <= t))
    assert evaluation.failure_rate(errors, t) == pytest.approx(1 - f)
  assert fraction[-1] == 1.0 and np.all(np.diff(fraction) >= 0)


def test_per_image_error_by_hand():
  pred = np.array([[[0.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
  target = np.zeros((1, 3, 2))
  visible = np.array([[1.0, 1.0, 0.0]])  # the far-off point is occluded
  err = evaluation.per_image_errors(pred, target, visible, np.array([2.0]))
  assert err[0] == pytest.approx((0 + 5) / 2 / 2)


def test_normalizers_by_hand(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  lm = _faces(rng)
  eye_l = (lm[:, 36] + lm[:, 39]) / 2
  eye_r = (lm[:, 42] + lm[:, 45]) / 2
  np.testing.assert_allclose(evaluation.normalizers("eye_centers", lm),
                             np.hypot(*(eye_l - eye_r).T))
  np.testing.assert_allclose(evaluation.normalizers("outer_eye_corners", lm),
                             np.hypot(*(lm[:, 36] - lm[:, 45]).T))
  pup = lm[:, 36:42].sum(1) / 6 - lm[:, 42:48].sum(1) / 6
  np.testing.assert_allclose(evaluation.normalizers("inter_pupil", lm),
                             np.hypot(*pup.T))
  hands = rng.uniform(0, 64, size=(4, 25, 2))
  np.testing.assert_allclose(evaluation.normalizers("wrist", hands),
                             np.hypot(*(hands[:, 0] - hands[:, 24]).T))
  stored = rng.uniform(1, 2, size=5)
  np.testing.assert_allclose(evaluation.normalizers("dataset", lm, stored), stored)
  np.testing.assert_allclose(evaluation.normalizers("pixels", lm), 1.0)


def test_normalizer_errors_name_the_fix():
  with pytest.raises(ValueError, match="eye_centers.*K=5"):
    evaluation.normalizers("eye_centers", np.zeros((2, 5, 2)))
  with pytest.raises(ValueError, match="choose one of"):
    evaluation.normalizers("eyes", np.zeros((2, 68, 2)))


def test_summarize_ignores_padding_and_is_invariant_to_it(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  n, k = 12, 68
  lm = _faces(rng, n, k)
  pred = lm + rng.normal(0, 1.0, size=lm.shape)
  visible = (rng.uniform(size=(n, k)) > 0.1).astype(np.float32)
  logits = {"emotion": rng.normal(size=(n, 6))}
  labels = {"emotion": rng.integers(0, 6, size=n)}
  stored = np.ones(n)
  mask = np.ones(n)
  metrics, errors = evaluation.summarize(pred, lm, visible, stored, mask,
                                         "eye_centers", logits, labels)
  # Append padding with garbage values: nothing may change.
  pad = 4
  cat = lambda a, filler: np.concatenate([a, filler], axis=0)
  padded, _ = evaluation.summarize(
      cat(pred, rng.normal(size=(pad, k, 2)) * 1e6), cat(lm, np.zeros((pad, k, 2))),
      cat(visible, np.ones((pad, k))), cat(stored, np.zeros(pad)),
      cat(mask, np.zeros(pad)), "eye_centers",
      {"emotion": cat(logits["emotion"], rng.normal(size=(pad, 6)))},
      {"emotion": cat(labels["emotion"], np.zeros(pad, int))})
  assert padded == metrics
  assert metrics["num_images"] == n
  norm = evaluation.normalizers("eye_centers", lm)
  manual = [np.mean(np.linalg.norm(pred[i] - lm[i], axis=-1)[visible[i] > 0]) / norm[i]
            for i in range(n)]
  assert metrics["landmark_error"] == pytest.approx(np.mean(manual))
  np.testing.assert_allclose(errors, manual)
  assert metrics["failure_rate@0.08"] == pytest.approx(np.mean(np.array(manual) > 0.08))
  assert metrics["failure_rate@0.10"] == pytest.approx(np.mean(np.array(manual) > 0.10))
  assert metrics["accuracy/emotion"] == pytest.approx(
      np.mean(logits["emotion"].argmax(-1) == labels["emotion"]))
  assert 0.0 <= metrics["auc@0.08"] <= 1.0


def test_error_unit():
  assert evaluation.error_unit("pixels") == "pixels"
  assert evaluation.error_unit("wrist") == "fraction of wrist"


def test_hit_rates_by_hand_and_in_summarize(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  n, k = 40, 2
  targets = rng.uniform(0, 60, (n, k, 2))
  radii = rng.uniform(3, 8, (n, k))
  # Landmark 0 near object 1 and landmark 1 near object 0, with noise.
  pred = targets[:, ::-1] + rng.normal(0, 4, (n, k, 2))
  mask = (rng.random(n) > 0.2).astype(np.float32)
  expected = np.zeros((k, k))
  for a in range(k):
    for b in range(k):
      hits = [np.hypot(*(pred[i, a] - targets[i, b])) <= radii[i, b]
              for i in range(n) if mask[i]]
      expected[a, b] = np.mean(hits)
  rates = evaluation.hit_rates(pred, targets, radii, mask)
  np.testing.assert_allclose(rates, expected)
  assert rates[0, 1] > rates[0, 0] and rates[1, 0] > rates[1, 1]
  metrics, pixel_errors = evaluation.summarize(
      pred, targets, np.ones((n, k)), np.ones(n), mask, "pixels", radii=radii)
  assert metrics["hit/0/1"] == rates[0, 1] and metrics["hit/1/0"] == rates[1, 0]
  # Pixel errors: no failure rates / AUC (their thresholds are fractions of
  # a normaliser); a normalised error keeps them.
  assert not [m for m in metrics if m.startswith(("failure_rate", "auc"))]
  normalised, _ = evaluation.summarize(pred, targets, np.ones((n, k)),
                                       np.full(n, 40.0), mask, "dataset")
  assert normalised["failure_rate@0.10"] == pytest.approx(
      evaluation.failure_rate(pixel_errors / 40.0, 0.10))
