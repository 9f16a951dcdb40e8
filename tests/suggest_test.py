"""landmark_ssl.suggest: the unlabelled training images ranked by ELT
disagreement (recomputed here independently), the list, COCO ids, overlay
sheet, the random baseline and the next round's workdir."""

import csv
import json
import os
import re

import jax
import numpy as np
import pytest
from PIL import Image

from landmark_ssl import elt_disagreement
from landmark_ssl import evaluator
from landmark_ssl import input_pipeline
from landmark_ssl import rundir
from landmark_ssl import suggest


def test_candidates_scores_and_order():
  rng = np.random.default_rng()
  n = int(rng.integers(10, 200))
  labeled = np.sort(rng.choice(n, int(rng.integers(1, n)), replace=False))
  flagged = rng.random(n) < 0.3
  got = suggest.candidates(n, labeled)
  assert set(got) == set(range(n)) - set(labeled)
  got = suggest.candidates(n, labeled, flagged)
  assert set(got) == set(range(n)) - set(labeled) - set(np.flatnonzero(flagged))
  d = rng.uniform(0, 5, (n, 4))
  norm = rng.uniform(0.5, 2, n)
  np.testing.assert_allclose(suggest.image_scores(d, norm),
                             d.mean(1) / norm)
  # nan (no transform kept the point in the frame) is left out of the mean;
  # an image of only nan scores 0.
  d[: n // 2, 0] = np.nan
  d[0] = np.nan
  want = np.nanmean(d[1:], axis=1) / norm[1:]
  np.testing.assert_allclose(suggest.image_scores(d, norm)[1:], want)
  assert suggest.image_scores(d, norm)[0] == 0.0
  scores = rng.integers(0, 5, n).astype(float)  # ties
  order = suggest.top(scores, n)
  assert sorted(order) == list(range(n))
  for a, b in zip(order[:-1], order[1:]):
    assert scores[a] > scores[b] or (scores[a] == scores[b] and a < b)
  assert suggest.unique_in_order([3, 1, 3, 2, 1]) == [3, 1, 2]


def _recomputed_scores(workdir, transforms, in_frame=False):
  """Every candidate's score, with the run's model applied directly."""
  run = evaluator.restore_run(workdir)
  builder = input_pipeline.open_dataset(run.config.data)
  source = builder.as_data_source(split="train")
  flags_ = input_pipeline.read_labeled_flags(source)
  labeled = input_pipeline.load_labeled(workdir)
  pool = [i for i in range(len(source))
          if i not in set(labeled) and not flags_[i]]
  apply = jax.jit(lambda x: run.state.apply_fn(
      {"params": run.state.params}, x, train=False)["landmarks"])
  fn = lambda x: np.asarray(apply(np.asarray(x, np.float32)))
  images = np.stack([source[i]["image"] for i in pool]) / np.float32(255)
  norm = np.array([source[i]["normalizer"] for i in pool])
  d = elt_disagreement.keypoint_disagreement(fn, images, transforms,
                                             in_frame=in_frame)
  known = ~np.isnan(d)
  d = np.where(known, d, 0.0).sum(1) / np.maximum(known.sum(1), 1)
  return dict(zip(pool, d / norm))


def test_suggest_on_a_dataset_of_your_own(coco_run, tmp_path, monkeypatch):
  out = tmp_path / "out"
  result = suggest.run_suggest(str(coco_run.workdir), 2, str(out),
                               num_transforms=3, seed=5, sheet=2,
                               batch_size=8)
  rows = list(csv.DictReader(open(out / suggest.CSV_FILE)))
  assert [int(r["rank"]) for r in rows] == [1, 2]
  transforms = elt_disagreement.draw_transforms(
      5, 3, elt_disagreement.ranges_of(coco_run.config), (32, 32))
  want = _recomputed_scores(coco_run.workdir, transforms)
  assert result["candidates"] == len(want) == 3
  best = sorted(want, key=lambda i: (-want[i], i))[:2]
  assert [int(r["index"]) for r in rows] == best == result["indices"]
  for r in rows:
    assert float(r["score"]) == pytest.approx(want[int(r["index"])],
                                              rel=1e-3, abs=1e-6)
  source = input_pipeline.open_dataset(coco_run.config.data).as_data_source(
      split="train")
  ids = [int(source[i]["image_id"]) for i in best]
  assert [int(r["image_id"]) for r in rows] == ids
  text = (out / suggest.IDS_FILE).read_text().split()
  assert [int(t) for t in text] == suggest.unique_in_order(ids)
  assert set(ids) <= {12, 14, 15}  # the fixtures' unlabelled images
  with Image.open(out / suggest.SHEET_FILE) as sheet:
    assert sheet.size[0] > 100
  assert json.loads((out / suggest.JSON_FILE).read_text())["image_ids"] == (
      suggest.unique_in_order(ids))
  # In frame: the same, over the transforms keeping each point inside;
  # with shifts of up to 90% of the side (the run's own ranges move no
  # point out of this 32x32 frame), so that the flag changes the scores.
  wide = {"rotation": 0.0, "scale": 0.0, "translation": 0.9}
  monkeypatch.setattr(elt_disagreement, "ranges_of", lambda config: wide)
  result = suggest.run_suggest(str(coco_run.workdir), 3, str(tmp_path / "f"),
                               num_transforms=3, seed=5, sheet=0,
                               batch_size=8, rank_by="elt_in_frame")
  transforms = elt_disagreement.draw_transforms(5, 3, wide, (32, 32))
  all_points = _recomputed_scores(coco_run.workdir, transforms)
  want = _recomputed_scores(coco_run.workdir, transforms, in_frame=True)
  assert any(abs(want[i] - all_points[i]) > 1e-6 for i in want)
  assert result["indices"] == sorted(want, key=lambda i: (-want[i], i))
  np.testing.assert_allclose(result["scores"],
                             [want[i] for i in result["indices"]],
                             rtol=1e-3, atol=1e-6)
  # No simulated round on data whose suggested labels do not exist yet.
  with pytest.raises(ValueError, match="have no labels yet"):
    suggest.run_suggest(str(coco_run.workdir), 2, str(tmp_path / "o2"),
                        next_workdir=str(tmp_path / "next"), batch_size=8)
  assert not (tmp_path / "next").exists()


def test_random_baseline_and_the_next_round_on_blocks(tiny_blocks_run,
                                                      tmp_path):
  workdir = str(tiny_blocks_run.workdir)
  seed = int(np.random.default_rng().integers(1000))
  nxt = tmp_path / "round1"
  result = suggest.run_suggest(workdir, 7, str(tmp_path / "out"),
                               rank_by="random", seed=seed,
                               next_workdir=str(nxt), batch_size=8)
  labeled = input_pipeline.load_labeled(workdir)
  chosen = np.asarray(result["indices"])
  assert len(chosen) == 7 and not set(chosen) & set(labeled)
  assert result["image_ids"] is None
  assert not (tmp_path / "out" / suggest.IDS_FILE).exists()
  assert (nxt / "config.json").read_text() == open(
      os.path.join(workdir, "config.json")).read()
  config = evaluator.read_config(workdir)
  config.data.data_dir = str(tiny_blocks_run.data_dir)
  subset = input_pipeline.labeled_subset(config.data, config.seed, nxt)
  np.testing.assert_array_equal(subset, np.union1d(labeled, chosen))
  # main with the run's own command takes the folder as that run, fresh.
  round0 = json.loads((nxt / "config.json").read_text())
  assert rundir.inspect_workdir(round0, nxt, False) == []
  # Another command (a forgotten override) replaces the config but keeps
  # the prepared subset: the round still trains on the suggested images.
  other = json.loads(json.dumps(round0))
  other["train"]["max_epochs"] = round0["train"]["max_epochs"] + 1
  assert rundir.inspect_workdir(other, nxt, False) == [nxt / "config.json"]
  assert rundir.is_prepared_subset(nxt / rundir.LABEL_SUBSET)
  assert not rundir.is_prepared_subset(
      os.path.join(workdir, rundir.LABEL_SUBSET))
  again = suggest.run_suggest(workdir, 7, str(tmp_path / "out2"),
                              rank_by="random", seed=seed, batch_size=8)
  assert again["indices"] == result["indices"]
  with pytest.raises(ValueError, match="not empty"):
    suggest.run_suggest(workdir, 7, str(tmp_path / "out3"), rank_by="random",
                        next_workdir=str(nxt), batch_size=8)


def test_bad_arguments(tmp_path, tiny_blocks_run):
  with pytest.raises(ValueError, match="--n=0"):
    suggest.run_suggest(str(tiny_blocks_run.workdir), 0)
  with pytest.raises(ValueError, match="--rank='best'"):
    suggest.run_suggest(str(tiny_blocks_run.workdir), 3, rank_by="best")
  with pytest.raises(ValueError, match="no label_subset.json"):
    suggest.run_suggest(str(tmp_path), 3)


def test_outputs_and_flags_are_checked_before_the_run_loads(tmp_path,
                                                            tiny_blocks_run):
  workdir = str(tiny_blocks_run.workdir)
  afile = tmp_path / "afile.txt"
  afile.write_text("mine")
  for kwargs, message in (
      (dict(batch_size=0), "--batch_size=0: use at least 1"),
      (dict(seed=-1), "--seed=-1: use an integer >= 0"),
      (dict(out_dir=str(afile)), f"--out={afile} is a file"),
      (dict(next_workdir=str(afile)), f"--next_workdir={afile} is a file")):
    with pytest.raises(ValueError, match=re.escape(message)):
      suggest.run_suggest(workdir, 3, **kwargs)
  with pytest.raises(ValueError, match="is not a directory"):
    suggest.run_suggest(str(tmp_path / "nothing"), 3)
  assert afile.read_text() == "mine"
  # An earlier suggestion in --out: refused, untouched; --overwrite
  # replaces it and leaves none of its files (no sheet for --rank=random).
  out = tmp_path / "out"
  out.mkdir()
  for name in (suggest.CSV_FILE, suggest.SHEET_FILE, "notes.txt"):
    (out / name).write_text("earlier")
  with pytest.raises(ValueError, match=re.escape(
      f"{out} already holds an earlier suggestion (suggestions.csv, "
      "overlay_sheet.png); nothing was changed")):
    suggest.run_suggest(workdir, 3, str(out), rank_by="random")
  assert (out / suggest.SHEET_FILE).read_text() == "earlier"
  result = suggest.run_suggest(workdir, 3, str(out), rank_by="random",
                               overwrite=True, batch_size=2)
  assert sorted(p.name for p in out.iterdir()) == sorted(
      ["notes.txt"] + result["files"])
  assert not (out / suggest.SHEET_FILE).exists()
  # A sheet larger than --batch_size is predicted in batches.
  result = suggest.run_suggest(workdir, 5, str(tmp_path / "sheet"), sheet=5,
                               batch_size=2, num_transforms=2)
  assert suggest.SHEET_FILE in result["files"] and result["n"] == 5
