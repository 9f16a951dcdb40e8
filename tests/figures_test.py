"""Figures: every plotting function writes a PNG of its size, the plots show
the data of the files they read, markers sit on the landmarks, and the CLI
and the report produce and link the figures of runs and sweeps."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from landmark_ssl import evaluation
from landmark_ssl import figures
from landmark_ssl.analysis import plots
from landmark_ssl import geometry
from landmark_ssl import report
from landmark_ssl import rundir
from landmark_ssl import evaluator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _check_png(fig, path):
  """Saves ``fig`` and checks the file: a PNG of png_size, not blank."""
  plots.save_png(fig, path)
  assert os.path.getsize(path) > 2000
  with Image.open(path) as img:
    assert img.format == "PNG"
    assert img.size == plots.png_size(fig)
    w, h = fig.get_size_inches() * plots.DPI
    assert img.size == (round(w), round(h))
    pixels = np.asarray(img.convert("RGB"))
  assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
  return pixels


def _events(rng, steps=40, every=10):
  events = []
  for step in range(5, steps + 1, 5):
    events.append({"event": "train", "step": step, "epoch": step / 10,
                   "loss": float(rng.uniform(1, 2)),
                   "landmark": float(rng.uniform(0.5, 1)),
                   "class": float(rng.uniform(0.1, 0.5)),
                   "elt": float(rng.uniform(0.01, 0.1)),
                   "weight_decay": 3.0, "images_per_s": 100.0})
    if step % every == 0:
      events.append({"event": "eval", "split": "validation", "step": step,
                     "epoch": step / 10,
                     "landmark_error": float(rng.uniform(0.02, 0.2)),
                     "accuracy/label": float(rng.uniform(0.3, 0.9)),
                     "best_step": every * 2})
  events.append({"event": "test", "split": "test", "step": 20,
                 "landmark_error": 0.05})
  return events


def test_every_plot_function_writes_a_png_of_its_size(tmp_path, fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  n, k, size = 5, 4, 40
  images = rng.uniform(0, 1, (n, size, size, 1)).astype(np.float32)
  gt = rng.uniform(0, size - 1, (n, k, 2))
  pred = gt + rng.normal(0, 2, gt.shape)
  visible = (rng.uniform(size=(n, k)) > 0.2).astype(np.float32)
  curve = plots.CedCurve("a", *evaluation.ced(rng.uniform(0, 0.2, 50), 0.2))
  made = {
      "training": plots.training_curves(_events(rng), "a run",
                                          "fraction of eye_centers"),
      "ced": plots.ced_figure([("5%", [curve]), ("10%", [curve, curve])],
                                "CED", "fraction of wrist"),
      "grid": plots.overlay_grid(
          images, gt, visible,
          [("Seq-MT (L)", pred, rng.uniform(0, 3, n)),
           ("Seq-MT (L+T)", pred + 1, None)], "grid", "pixels"),
      "maps": plots.maps_figure(images, rng.normal(size=(n, size, size, k)),
                                  pred, "maps", [f"c{i}" for i in range(n)],
                                  max_maps=2),
      "overlay": plots.prediction_overlay(
          rng.integers(0, 255, (90, 130, 3), dtype=np.uint8),
          rng.uniform(0, 80, (k, 2)), "photo.jpg", (10, 10, 60, 70),
          (np.array([35.0, 40.0]), 78.0)),
  }
  for name, fig in made.items():
    _check_png(fig, tmp_path / f"{name}.png")
  # Grid and maps layouts follow their inputs.
  assert len(made["grid"].axes) == 2 * n
  assert len(made["maps"].axes) == (1 + 2) * n + 2 * n  # + a colourbar per map
  assert plots.png_size(made["grid"])[1] < plots.png_size(made["maps"])[1]


@pytest.mark.parametrize("normalizer", ["pixels", "eye_centers"])
def test_ced_plot_shows_the_file_curve(tmp_path, normalizer, fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  n = 37
  outputs = {"pred_landmarks": rng.normal(size=(n, 68, 2)),
             "landmarks": rng.normal(size=(n, 68, 2)),
             "visible": np.ones((n, 68)), "normalizer": np.ones(n),
             "index": np.arange(n)}
  errors = rng.uniform(0.0, 0.3, n)
  errors[3] = np.nan  # an image without visible landmarks
  evaluator.write_split_outputs(tmp_path, "test", outputs, errors, normalizer, 12)
  ced = json.loads((tmp_path / "ced_test.json").read_text())
  fig = figures.run_ced_figure(ced, "title", "Seq-MT (L)", "unused")
  (line,) = fig.axes[0].get_lines()[:1]
  scale = 1.0 if normalizer == "pixels" else 100.0
  np.testing.assert_allclose(line.get_xdata(), np.asarray(ced["thresholds"]) * scale)
  np.testing.assert_allclose(line.get_ydata(), np.asarray(ced["fraction"]) * 100)
  label = fig.axes[0].get_xlabel()
  assert label == ("error (pixels)" if normalizer == "pixels"
                   else "error (% of eye_centers)")
  assert "36 images" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_training_curves_show_the_events(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  events = _events(rng)
  fig = plots.training_curves(events, "t", "fraction of wrist")
  costs, error, accuracy = fig.axes
  train_ev = [e for e in events if e["event"] == "train"]
  eval_ev = [e for e in events if e["event"] == "eval"]
  lines = {l.get_label(): l for l in costs.get_lines()}
  assert set(lines) == {"loss", "landmark", "class", "elt", "best (step 20)"}
  np.testing.assert_allclose(lines["elt"].get_xdata(), [e["epoch"] for e in train_ev])
  np.testing.assert_allclose(lines["elt"].get_ydata(), [e["elt"] for e in train_ev])
  err = error.get_lines()[0]
  np.testing.assert_allclose(err.get_ydata(),
                             [100 * e["landmark_error"] for e in eval_ev])
  assert error.get_ylabel() == "mean error (% of wrist)"
  np.testing.assert_allclose(accuracy.get_lines()[0].get_ydata(),
                             [100 * e["accuracy/label"] for e in eval_ev])
  best = lines["best (step 20)"]
  assert best.get_xdata()[0] == pytest.approx(2.0)  # step 20 = epoch 2
  assert costs.get_yscale() == "log"


def test_overlay_markers_sit_on_the_landmarks(tmp_path, fresh_seed):
  """GT_COLOR pixels at the ground truth, PRED_COLOR at the prediction, in
  the PNG."""
  rng = np.random.default_rng(fresh_seed)
  size, k = 48, 3
  image = np.zeros((1, size, size, 1), np.float32)
  # At least 9 px from every edge, so each prediction (7 to 9 px off on
  # each axis) stays on the image (a seed that drew x = -0.9 failed).
  gt = np.array([[[10.0, 12.0], [30.0, 14.0], [22.0, 36.0]]])
  pred = gt + rng.uniform(7, 9, gt.shape) * rng.choice([-1, 1], gt.shape)
  assert (pred >= 0).all() and (pred <= size - 1).all()
  fig = plots.overlay_grid(image, gt, np.ones((1, k)),
                             [("row", pred, None)], "markers")
  pixels = _check_png(fig, tmp_path / "o.png")
  ax = fig.axes[0]
  offsets = [c.get_offsets() for c in ax.collections[1:]]
  np.testing.assert_allclose(offsets[0], gt[0])
  np.testing.assert_allclose(offsets[1], pred[0])
  height = pixels.shape[0]
  def rgb(hex_colour):
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
  for points, want in ((gt[0], rgb(plots.GT_COLOR)),
                       (pred[0], rgb(plots.PRED_COLOR))):
    for x, y in ax.transData.transform(points):
      got = pixels[int(round(height - y)), int(round(x))].astype(int)
      assert np.abs(got - want).max() < 40, ((x, y), got, want)


def test_pooled_ced_is_the_mean_of_the_seeds_curves(fresh_seed):
  rng = np.random.default_rng(fresh_seed)
  seeds = [rng.gamma(2.0, 1.5, 150) for _ in range(3)]
  pooled = plots.pooled_ced(seeds, "row")
  top = pooled.thresholds[-1]
  assert top == pytest.approx(max(s.max() for s in seeds))
  mean = np.mean([evaluation.ced(s, top, len(pooled.thresholds))[1]
                  for s in seeds], axis=0)
  np.testing.assert_allclose(pooled.fraction, mean)


def test_spread_indices_and_grid_fraction():
  a, b = np.arange(100), np.arange(0, 100, 2)
  idx = figures.spread_indices([a, b[::-1]], 5)
  assert list(idx) == [0, 24, 48, 74, 98]
  assert list(figures.spread_indices([np.array([5, 3])], 8)) == [3, 5]
  with pytest.raises(ValueError, match="no test image"):
    figures.spread_indices([np.array([1]), np.array([2])], 3)
  assert figures.grid_fraction({0.01: 4, 0.05: 4, 1.0: 2}) == 0.05
  assert figures.grid_fraction({0.01: 4, 0.1: 4, 1.0: 2}) == 0.01
  assert figures.grid_fraction({0.01: 2, 0.1: 4}, requested=0.01) == 0.01
  with pytest.raises(ValueError, match="--fraction=0.2"):
    figures.grid_fraction({0.01: 2}, requested=0.2)


def test_run_figures(tiny_blocks_run, tmp_path):
  run = str(tiny_blocks_run.workdir)
  out = figures.write_figures(run, num_images=5)
  names = sorted(os.path.basename(p) for p in out.figures)
  assert names == ["ced_test.png", "overlays_test.png", "training.png"]
  with pytest.raises(ValueError, match="splits a sweep's rows"):
    figures.write_figures(run, num_images=5, by=["model.bta"])
  assert not out.skipped
  with Image.open(os.path.join(run, "figures", "overlays_test.png")) as img:
    # One row of 5 panels.
    assert img.size == (round((plots._PANEL_IN * 5 + 0.6) * plots.DPI),
                        round((plots._PANEL_IN + 0.9) * plots.DPI))
  # Maps by default only for runs without landmark labels (costs C): such a
  # copy of the run, without its checkpoints, tries and says why it cannot.
  copy = tmp_path / "copy"
  shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints",
                                                           "figures"))
  config = json.loads((copy / "config.json").read_text())
  config["costs"] = "C"
  (copy / "config.json").write_text(json.dumps(config))
  out = figures.run_figures(str(copy))
  ((path, why),) = out.skipped
  assert path.endswith("maps_test.png") and "has no checkpoint" in why


def test_maps_figure_is_the_checkpoints_forward_pass(tiny_blocks_run,
                                                    monkeypatch):
  """The maps come from a forward pass of the best checkpoint: its landmarks
  are the soft-argmax of the maps and the stored test predictions."""
  from landmark_ssl import evaluator  # pylint: disable=g-import-not-at-top
  run = str(tiny_blocks_run.workdir)
  restored = evaluator.restore_run(run)
  pred = rundir.read_predictions(os.path.join(run, "predictions_test.npz"))
  idx = figures.spread_indices([pred["index"]], 4)
  batch = figures.dataset_examples(restored.config.data, "test", idx)
  fwd = figures.forward(restored, batch["image"])
  np.testing.assert_allclose(fwd["landmarks"],
                             pred["pred_landmarks"][figures.rows_of(pred, idx)],
                             atol=1e-4)
  np.testing.assert_allclose(
      geometry.soft_argmax(fwd["maps"], restored.config.model.get("beta", 1.0)),
      fwd["landmarks"], atol=1e-4)
  fig = figures.maps_of_run(restored, restored.config.data, "test", idx, "t")
  # the image and 4 of the 5 maps, each map with its colourbar
  assert len(fig.axes) == (1 + 4) * 4 + 4 * 4
  crosses = fig.axes[0].collections[0].get_offsets()
  np.testing.assert_allclose(crosses, fwd["landmarks"][0], atol=1e-4)
  # --maps draws it for a run with landmark labels too (one restore is
  # enough for this test).
  monkeypatch.setattr(evaluator, "restore_run", lambda *a, **k: restored)
  out = figures.run_figures(run, num_images=4, maps=True)
  assert "maps_test.png" in [os.path.basename(p) for p in out.figures]


def _fake_sweep(source, sweep_dir, alphas=(None,)):
  """Copies of a finished run as the four Seq-MT rows, two seeds each (and
  each of ``alphas`` as config.loss.alpha, None: the run's own)."""
  for costs in ("L", "L+C", "L+T", "L+T+C"):
    for seed in (0, 1):
      for alpha in alphas:
        suffix = "" if alpha is None else f"_loss.alpha={alpha}"
        run_dir = sweep_dir / f"seq_mt_{costs}_f0.2_s{seed}{suffix}"
        shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns(
            "figures", "checkpoints", "tensorboard"))
        for name in ("config.json", "results.json"):
          data = json.loads((run_dir / name).read_text())
          config = data if name == "config.json" else data["config"]
          config["costs"], config["seed"] = costs, seed
          if alpha is not None:
            config["loss"]["alpha"] = alpha
          (run_dir / name).write_text(json.dumps(data))


def test_sweep_figures_and_report_links(tiny_blocks_run, tmp_path):
  _fake_sweep(tiny_blocks_run.workdir, tmp_path)
  text = report.write_report(str(tmp_path))
  assert "## Figures" in text and "None yet" in text
  assert not (tmp_path / "figures").exists()  # the default report draws none
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.figures", f"--workdir={tmp_path}",
       "--num_images=6"], cwd=ROOT, env=ENV, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  grid = tmp_path / "figures" / "overlays_blocks_test_f0.2.png"
  with Image.open(grid) as img:  # 4 rows (L, L+C, L+T, L+T+C) x 6 images
    assert img.size == (round((plots._PANEL_IN * 6 + 0.6) * plots.DPI),
                        round((plots._PANEL_IN * 4 + 0.9) * plots.DPI))
  assert (tmp_path / "figures" / "ced_blocks_test.png").exists()
  text = report.write_report(str(tmp_path), figures=True)
  assert "![Predictions (blue: ground truth, orange: prediction, yellow: " \
      "error): blocks, test split, 20% landmark labels](figures/" \
      "overlays_blocks_test_f0.2.png)" in text
  assert "(seeds pooled): blocks, test split](figures/ced_blocks_test.png)" in text
  links = [l.split("](")[1].split(")")[0] for l in text.splitlines()
           if "](" in l]
  assert links and all((tmp_path / l).exists() for l in links)
  assert (tmp_path / "report.md").read_text() == text


def test_sweep_figures_by_a_grid_key_split_the_rows(tiny_blocks_run, tmp_path,
                                                    monkeypatch, fresh_seed):
  """Two settings of loss.alpha: with --by each row and setting has its own
  CED curve (its seeds pooled) and grid row; without it one curve pools
  both, and a warning names the key."""
  alphas = (0.3, 3.0)
  _fake_sweep(tiny_blocks_run.workdir, tmp_path, alphas)
  rng = np.random.default_rng(fresh_seed)
  errors = {}  # (costs, alpha) -> the pooled errors of its two seeds
  for run in sorted(tmp_path.iterdir()):
    config = json.loads((run / "config.json").read_text())
    errs = np.sort(rng.gamma(2.0, 1.0 + config["loss"]["alpha"], 30))
    (run / "ced_test.json").write_text(json.dumps(
        {"errors_sorted": errs.tolist()}))
    errors.setdefault((config["costs"], config["loss"]["alpha"]), []).append(errs)
  warnings = []
  monkeypatch.setattr(figures.logging, "warning",
                      lambda msg, *a: warnings.append(msg % a))
  runs, _ = report.load_runs(str(tmp_path), ["loss.alpha"])
  cells = figures._runs_by_cell(runs)
  fig = figures._sweep_ced(cells, "blocks", "test", "pixels")
  lines = {l.get_label(): l for l in fig.axes[0].get_lines()
           if not l.get_label().startswith("_")}
  assert len(lines) == 8
  for (costs, alpha), errs in errors.items():
    label = (f"Seq-MT ({costs}), loss.alpha={alpha}, 2 seeds")
    want = plots.pooled_ced(errs, label)
    np.testing.assert_allclose(lines[label].get_ydata(), 100 * want.fraction)
    np.testing.assert_allclose(lines[label].get_xdata(), want.thresholds)
  out = figures.write_figures(str(tmp_path), num_images=3, by=["loss.alpha"])
  assert not out.skipped and not warnings
  with Image.open(tmp_path / "figures" / "overlays_blocks_test_f0.2.png") as img:
    assert img.size[1] == round((plots._PANEL_IN * 8 + 0.9) * plots.DPI)
  runs, _ = report.load_runs(str(tmp_path))
  fig = figures._sweep_ced(figures._runs_by_cell(runs), "blocks", "test",
                           "pixels")
  labels = [l.get_label() for l in fig.axes[0].get_lines()
            if not l.get_label().startswith("_")]
  assert labels == [f"Seq-MT ({c}), 4 runs of 2 seeds" for c in
                    ("L", "L+C", "L+T", "L+T+C")]
  report.write_report(str(tmp_path), figures=True, by=["loss.alpha"],
                      figure_options={"num_images": 3})  # passes --by on
  assert not warnings
  figures.sweep_figures(str(tmp_path), num_images=3)
  assert len(warnings) == 4 and all("--by=loss.alpha" in w for w in warnings)


def test_missing_inputs_are_skipped_with_the_reason(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({
      "seed": 0, "costs": "L", "data": {"name": "blocks", "labeled_fraction":
                                        0.05, "test_splits": ["test"]},
      "model": {"name": "seq_mt"}, "eval": {"normalizer": "pixels"}}))
  out = figures.run_figures(str(tmp_path))
  assert not out.figures
  reasons = " ".join(why for _, why in out.skipped)
  assert "metrics.jsonl" in reasons and "ced_<split>.json" in reasons
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.figures", f"--workdir={tmp_path}"],
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and "skipped" in proc.stderr
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.figures",
       f"--workdir={tmp_path / 'nope'}"], cwd=ROOT, env=ENV,
      capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and "is not a directory" in proc.stderr


# Machado et al. (2009) dichromacy simulation at full severity, linear RGB.
_DEUTAN = np.array([[0.367322, 0.860646, -0.227968],
                    [0.280085, 0.672501, 0.047413],
                    [-0.011820, 0.042940, 0.968881]])
_PROTAN = np.array([[0.152286, 1.052583, -0.204868],
                    [0.114503, 0.786281, 0.099216],
                    [-0.003882, -0.048116, 1.051998]])


def _linear(hex_colour):
  rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
  return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _lab(linear_rgb):
  """CIELAB (D65) of a linear sRGB colour: distances are perceptual (dE)."""
  m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                [0.0193, 0.1192, 0.9505]])
  xyz = m @ np.clip(linear_rgb, 0, 1) / np.array([0.95047, 1.0, 1.08883])
  f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
  return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_truth_and_prediction_colours_differ_for_colour_blind_eyes():
  """The two colours stay far apart (dE > 90) for deuteranopes and
  protanopes (simulated); the old red/lime pair falls below 70."""
  gt, pred = _linear(plots.GT_COLOR), _linear(plots.PRED_COLOR)
  red, lime = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
  for sim in (np.eye(3), _DEUTAN, _PROTAN):
    assert np.linalg.norm(_lab(sim @ gt) - _lab(sim @ pred)) > 90
  for sim in (_DEUTAN, _PROTAN):
    assert np.linalg.norm(_lab(sim @ red) - _lab(sim @ lime)) < 70


@pytest.mark.parametrize("background", [0.0, 1.0])
def test_error_lines_show_on_black_and_on_white(background):
  """A long error line drawn over a black or a white image leaves pixels
  whose luminance differs clearly from the background along its middle."""
  fig = plots.new_figure(2, 2)
  ax = fig.add_axes([0, 0, 1, 1])
  plots._image_axes(ax, np.full((40, 40), background, np.float32))
  plots.draw_landmarks(ax, np.array([[5.0, 20.0]]), np.array([[35.0, 20.0]]))
  fig.canvas.draw()
  pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255
  h, w, _ = pixels.shape
  column = pixels[:, w // 2]  # crosses the line's middle, far from the dots
  # Luminance contrast (a yellow line alone on white would have ~0.07).
  luminance = column @ np.array([0.2126, 0.7152, 0.0722])
  assert np.abs(luminance - background).max() > 0.6


def test_maps_have_colourbars_and_outputs_take_format_and_dpi(tmp_path):
  rng = np.random.default_rng()
  images = rng.uniform(size=(2, 12, 12, 1)).astype(np.float32)
  maps = rng.normal(size=(2, 12, 12, 3)).astype(np.float32)
  marks = rng.uniform(0, 11, (2, 3, 2))
  fig = plots.maps_figure(images, maps, marks, "maps", max_maps=2)
  image_axes = [a for a in fig.axes if a.get_images()]
  assert len(fig.axes) == len(image_axes) + 2 * 2  # one colourbar per map
  for fmt, magic in (("svg", b"<?xml"), ("pdf", b"%PDF")):
    path = plots.save_figure(fig, tmp_path / f"m.{fmt}")
    assert open(path, "rb").read(5).startswith(magic)
  path = plots.save_figure(fig, tmp_path / "m.png", dpi=50)
  with Image.open(path) as img:
    assert img.size == tuple(round(v) for v in fig.get_size_inches() * 50)
  with pytest.raises(ValueError, match="--format='tiff'"):
    figures.Output("tiff")
  with pytest.raises(ValueError, match="not one of"):
    plots.save_figure(fig, tmp_path / "m.tiff")
