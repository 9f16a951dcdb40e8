r"""Which images to label next: the unlabelled training images on which a
trained run is least consistent.

  python -m landmark_ssl.suggest --workdir=RUN --n=50 [--out=DIR] \
      [--transforms=8] [--seed=0] [--rank=elt|random] [--next_workdir=DIR] \
      [--sheet=24] [--batch_size=64] [--step=N] [--data_dir=DIR] [--overwrite]

**Candidates**: the run's training images outside its labelled subset
(``label_subset.json``); for a dataset of your own, also outside the
examples that already have labelled keypoints (``has_landmarks``).

**Score** (``--rank=elt``): the ELT disagreement (``elt_disagreement``),
``(1/K) sum_k d_k(I)`` with ``d_k`` the mean ``||T(L_k(I)) - L_k(T(I))||``
over ``--transforms`` random transforms drawn (``--seed``) from the run's
ELT ranges, divided by the image's normaliser as the run's error is
(``config.eval.normalizer``: the stored one for ``'dataset'``, 1 for
``'pixels'``, and the landmark-based ones computed on the *predicted*
landmarks, the image having none). Highest first. ``--rank=elt_in_frame``
scores the same way over only the transforms that keep each point inside
the image (``elt_disagreement``'s ``in_frame``), since a point moved out of
the frame cannot be found; an image no transform keeps any point of inside
scores 0. (On Blocks both rank first the images whose blocks the border
cuts: docs/RESULTS.md, "Which images to label next".) ``--rank=random`` draws
``--n`` candidates uniformly (``--seed``) instead: the baseline an active
labelling round is compared with.

Outputs in ``--out`` (default ``<workdir>/suggest``):

* ``suggestions.csv``: ``rank, index`` (the example's index in the train
  split), ``id``, ``image_id`` and ``annotation_id`` (COCO ids, datasets of
  your own), ``score``, ``disagreement_px`` (the mean ``d_k`` in pixels of
  the stored image), the top ``--n``;
* ``coco_image_ids.txt``: the COCO image ids of those examples, one per
  line, in rank order, each once (datasets of your own), to select the
  images in an annotation tool;
* ``suggestions.json``: the settings, the ranked indices and ids;
* ``overlay_sheet.png``: the top ``--sheet`` images with the run's landmarks
  (orange) and, per transform, the landmarks of the transformed image
  mapped back (blue): a wide blue cloud is a point the model is unsure of.

An ``--out`` that holds an earlier suggestion's files is refused before the
run loads, unless ``--overwrite`` (which removes them first).

``--next_workdir=DIR`` prepares the next round of a simulated labelling
(data whose hidden labels are known, as Blocks): ``DIR/config.json`` is the
run's and ``DIR/label_subset.json`` its labelled subset plus the suggested
examples, so ``python -m landmark_ssl.main`` with the run's own command and
``--workdir=DIR`` trains the same model from the same seed with those
labels too.

Exit status: 0 done, 2 bad flags or a workdir without a checkpoint or
label subset.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from landmark_ssl import rundir

CSV_FILE = "suggestions.csv"
JSON_FILE = "suggestions.json"
IDS_FILE = "coco_image_ids.txt"
SHEET_FILE = "overlay_sheet.png"
OUTPUT_FILES = (CSV_FILE, JSON_FILE, IDS_FILE, SHEET_FILE)  # --out's, one run's
RANKS = ("elt", "elt_in_frame", "random")


# --------------------------------------------------------------------------
# pure functions


def candidates(num_examples: int, labeled: np.ndarray,
               has_landmarks: np.ndarray | None = None) -> np.ndarray:
  """Sorted train indices that are neither in the labelled subset nor (for
  a dataset with stored labels) already labelled."""
  out = np.setdiff1d(np.arange(int(num_examples)), np.asarray(labeled))
  if has_landmarks is not None:
    out = out[~np.asarray(has_landmarks, bool)[out]]
  return out


def image_scores(disagreement: np.ndarray, normalizer: np.ndarray
                 ) -> np.ndarray:
  """``(N,)``: the mean over landmarks of ``(N, K)`` disagreements divided
  by each image's normaliser; ``nan`` disagreements (no transform kept the
  point in the frame) are left out, and an image of only those scores 0."""
  d = np.asarray(disagreement, np.float64)
  known = ~np.isnan(d)
  mean = np.where(known, d, 0.0).sum(-1) / np.maximum(known.sum(-1), 1)
  return mean / np.asarray(normalizer, np.float64)


def top(scores: np.ndarray, n: int) -> np.ndarray:
  """Positions of the ``n`` highest scores, highest first (ties: the lower
  position first)."""
  scores = np.asarray(scores, np.float64)
  order = np.lexsort((np.arange(len(scores)), -scores))
  return order[:int(n)]


def unique_in_order(values: Sequence[int]) -> list[int]:
  seen, out = set(), []
  for v in values:
    if v not in seen:
      seen.add(v)
      out.append(v)
  return out


def overlay_sheet(images: np.ndarray, landmarks: np.ndarray,
                  back: np.ndarray, captions: Sequence[str], title: str,
                  columns: int = 6):
  """The overlay sheet (module docstring) as a matplotlib figure.

  Args:
    images: ``(M, H, W, C)`` in [0, 1].
    landmarks: ``(M, K, 2)`` the run's landmarks.
    back: ``(T, M, K, 2)`` the landmarks of each transformed image, mapped
      back to the image.
    captions: one line per image.
    title: the figure title.
  """
  from landmark_ssl.analysis import plots  # pylint: disable=g-import-not-at-top
  m = len(images)
  cols = max(1, min(columns, m))
  rows = -(-m // cols)
  fig = plots.new_figure(1.8 * cols + 0.4, 1.9 * rows + 0.6)
  axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
  plots.set_title(fig, title)
  for i, ax in enumerate(axes.ravel()):
    if i >= m:
      ax.set_visible(False)
      continue
    img = np.asarray(images[i])[..., 0] if images.shape[-1] == 1 else images[i]
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    h, w = img.shape[:2]
    pts = back[:, i].reshape(-1, 2)
    ax.scatter(pts[:, 0], pts[:, 1], s=5, c=plots.GT_COLOR, linewidths=0,
               alpha=0.8, zorder=3)
    ax.scatter(landmarks[i, :, 0], landmarks[i, :, 1], s=14,
               c=plots.PRED_COLOR, edgecolors="black", linewidths=0.4,
               zorder=4)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(captions[i], fontsize=6, pad=2)
  return fig


# --------------------------------------------------------------------------
# orchestration


@dataclasses.dataclass
class Ranking:
  """The ranked candidates of a run.

  Attributes:
    indices: train indices of the top ``n``, best first.
    scores: their scores (``NaN`` with ``--rank=random``).
    disagreement_px: their mean disagreement in stored pixels (``NaN``
      with ``--rank=random``).
    num_candidates: how many candidates there were.
  """
  indices: np.ndarray
  scores: np.ndarray
  disagreement_px: np.ndarray
  num_candidates: int


def _forward(predictor):
  """Landmarks of any number of images, in batches of the predictor's size."""
  def forward(x):
    x = np.asarray(x, np.float32)
    size = predictor.batch_size
    return np.concatenate([predictor.predict(x[i:i + size])["landmarks"]
                           for i in range(0, len(x), size)])
  return forward


def rank(predictor, source, pool: np.ndarray, n: int, rank_by: str,
         transforms: np.ndarray, normalizer: str, names: Sequence[str],
         seed: int) -> Ranking:
  """Scores every candidate of ``pool`` (module docstring) and keeps ``n``."""
  from landmark_ssl import elt_disagreement  # pylint: disable=g-import-not-at-top
  from landmark_ssl import evaluation  # pylint: disable=g-import-not-at-top
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  n = min(int(n), len(pool))
  if rank_by == "random":
    rng = np.random.default_rng(int(seed))
    chosen = np.sort(rng.choice(pool, n, replace=False))
    nan = np.full(n, np.nan)
    return Ranking(chosen, nan, nan, len(pool))
  fn = _forward(predictor)
  scores, pixels = [], []
  for start in range(0, len(pool), predictor.batch_size):
    idx = pool[start:start + predictor.batch_size]
    ones = np.ones(len(idx))
    batch = input_pipeline.read_batch(source, idx, ones, ones, names)
    base = fn(batch["image"])
    d = elt_disagreement.keypoint_disagreement(
        fn, batch["image"], transforms, landmarks=base,
        in_frame=rank_by == "elt_in_frame")
    norm = evaluation.normalizers(normalizer, base, batch["normalizer"])
    scores.append(image_scores(d, norm))
    pixels.append(image_scores(d, np.ones(len(d))))
  scores, pixels = np.concatenate(scores), np.concatenate(pixels)
  best = top(scores, n)
  return Ranking(pool[best], scores[best], pixels[best], len(pool))


def back_mapped(predictor, images: np.ndarray, transforms: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
  """``(landmarks (M, K, 2), back (T, M, K, 2))`` for the sheet."""
  import jax  # pylint: disable=g-import-not-at-top
  from landmark_ssl import geometry  # pylint: disable=g-import-not-at-top
  fn = _forward(predictor)
  base = fn(images)
  warp = jax.jit(geometry.warp_affine)
  back = []
  for a in np.asarray(transforms, np.float32):
    pred = fn(np.asarray(warp(np.asarray(images, np.float32), a)))
    back.append(np.asarray(geometry.transform_points(
        pred, geometry.invert_affine(a))))
  return base, np.stack(back)


def check_next_workdir(next_workdir: str) -> None:
  """Raises ``ValueError`` unless ``next_workdir`` is new or empty."""
  if os.path.exists(next_workdir) and not os.path.isdir(next_workdir):
    raise ValueError(f"--next_workdir={next_workdir} is a file; give a new "
                     "folder for the next round's run.")
  if os.path.isdir(next_workdir) and os.listdir(next_workdir):
    raise ValueError(f"--next_workdir={next_workdir} is not empty; give a "
                     "new folder for the next round's run.")


def check_out_dir(out_dir: str, overwrite: bool) -> None:
  """Raises ``ValueError`` if ``out_dir`` is a file, or holds an earlier
  suggestion's files and not ``overwrite``; with ``overwrite`` removes
  those (so that no file of the earlier one stays beside the new)."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise ValueError(f"--out={out_dir} is a file; give a folder (made if "
                     "missing).")
  earlier = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(out_dir, f))]
  if earlier and not overwrite:
    raise ValueError(
        f"{out_dir} already holds an earlier suggestion ({', '.join(earlier)})"
        "; nothing was changed. Give another --out (e.g. one per --rank), or "
        "pass --overwrite to replace it.")
  for name in earlier:
    os.remove(os.path.join(out_dir, name))


def write_next_workdir(workdir: str, next_workdir: str,
                       indices: np.ndarray) -> str:
  """``next_workdir`` with the run's ``config.json`` and its labelled subset
  plus ``indices`` (module docstring); returns its label subset file.

  Raises:
    ValueError: ``next_workdir`` exists and is not empty.
  """
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  check_next_workdir(next_workdir)
  run, next_run = rundir.RunDir(workdir), rundir.RunDir(next_workdir)
  stored = rundir.read_json(run.label_subset_file)
  config_text = run.config_file.read_text()
  next_run.path.mkdir(parents=True, exist_ok=True)
  next_run.config_file.write_text(config_text)
  union = np.union1d(np.asarray(stored["indices"]), np.asarray(indices))
  meta = {k: v for k, v in stored.items() if k != "indices"}
  meta["suggested"] = [int(i) for i in indices]
  return os.fspath(input_pipeline.save_labeled(next_workdir, union, **meta))


def run_suggest(workdir: str, n: int, out_dir: str | None = None,
                num_transforms: int = 8, seed: int = 0,
                rank_by: str = "elt", next_workdir: str | None = None,
                sheet: int = 24, batch_size: int = 64,
                step: int | None = None, data_dir: str | None = None,
                overwrite: bool = False) -> dict:
  """The CLI's work (module docstring); returns ``suggestions.json``'s
  content. Every argument and output path is checked before the run loads.

  Raises:
    ValueError: bad arguments, no label subset or no candidate.
    evaluator.NoCheckpointError: no config or checkpoint.
  """
  from landmark_ssl import elt_disagreement  # pylint: disable=g-import-not-at-top
  from landmark_ssl.analysis import plots  # pylint: disable=g-import-not-at-top
  from landmark_ssl import input_pipeline  # pylint: disable=g-import-not-at-top
  from landmark_ssl import predict  # pylint: disable=g-import-not-at-top
  if int(n) < 1:
    raise ValueError(f"--n={n}: ask for at least one image.")
  if rank_by not in RANKS:
    raise ValueError(f"--rank={rank_by!r}: use one of {list(RANKS)}.")
  if int(num_transforms) < 1:
    raise ValueError(f"--transforms={num_transforms}: use at least 1.")
  if int(batch_size) < 1:
    raise ValueError(f"--batch_size={batch_size}: use at least 1.")
  if int(seed) < 0:
    raise ValueError(f"--seed={seed}: use an integer >= 0.")
  if not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir} is not a directory; give the "
                     "workdir of a trained run.")
  out_dir = out_dir or os.path.join(workdir, "suggest")
  check_out_dir(out_dir, overwrite)
  if next_workdir:
    check_next_workdir(next_workdir)
  labeled = input_pipeline.load_labeled(workdir)
  if labeled is None:
    raise ValueError(f"{workdir} has no {rundir.LABEL_SUBSET}: "
                     "not a trained landmark_ssl run (train it with python -m "
                     "landmark_ssl.main).")
  predictor = predict.Predictor.load(workdir, step, data_dir, batch_size)
  config = predictor.run.config
  builder = input_pipeline.open_dataset(config.data)
  split = config.data.get("train_split", "train")
  source = builder.as_data_source(split=split)
  flags_ = (input_pipeline.read_labeled_flags(source)
            if input_pipeline.fixed_labels(builder) else None)
  if next_workdir and flags_ is not None:
    raise ValueError(
        f"--next_workdir: the suggested images of {config.data.name!r} have "
        "no labels yet (a simulated round needs data whose labels are "
        f"known). Label them in your annotation tool ({IDS_FILE} lists "
        "them), export the file, rebuild the dataset with --overwrite and "
        "train again.")
  pool = candidates(len(source), labeled, flags_)
  if not len(pool):
    raise ValueError(f"{workdir}: every training image of "
                     f"{config.data.name!r} is labelled; nothing to suggest.")
  size = predictor.size
  transforms = elt_disagreement.draw_transforms(
      seed, num_transforms, elt_disagreement.ranges_of(config),
      (size, size))
  names = input_pipeline.class_features(builder)
  ranking = rank(predictor, source, pool, n, rank_by, transforms,
                 config.eval.normalizer, names, seed)
  records = [source[int(i)] for i in ranking.indices]
  coco = "image_id" in builder.info.features

  os.makedirs(out_dir, exist_ok=True)
  rows = []
  for r, (i, rec) in enumerate(zip(ranking.indices, records)):
    ident = rec["id"].decode() if isinstance(rec["id"], bytes) else rec["id"]
    rows.append({"rank": r + 1, "index": int(i), "id": ident,
                 "image_id": int(rec["image_id"]) if coco else "",
                 "annotation_id": int(rec["annotation_id"]) if coco else "",
                 "score": float(ranking.scores[r]),
                 "disagreement_px": float(ranking.disagreement_px[r])})
  with open(os.path.join(out_dir, CSV_FILE), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  image_ids = unique_in_order(r["image_id"] for r in rows) if coco else None
  if coco:
    with open(os.path.join(out_dir, IDS_FILE), "w") as f:
      f.write("".join(f"{i}\n" for i in image_ids))
  written = [CSV_FILE] + ([IDS_FILE] if coco else [])
  if sheet > 0 and rank_by != "random":
    m = min(int(sheet), len(rows))
    ones = np.ones(m)
    batch = input_pipeline.read_batch(source, ranking.indices[:m], ones, ones,
                                      names)
    base, back = back_mapped(predictor, batch["image"], transforms)
    captions = [f"#{r['rank']} {r['score']:.3g} {os.path.basename(r['id'])}"
                for r in rows[:m]]
    fig = overlay_sheet(batch["image"], base, back, captions,
                        f"{workdir}: the {m} images to label first (ELT "
                        f"disagreement over {num_transforms} transforms)")
    plots.save_png(fig, os.path.join(out_dir, SHEET_FILE))
    written.append(SHEET_FILE)
  result = {
      "workdir": os.fspath(workdir), "step": int(predictor.run.step),
      "dataset": config.data.name, "split": split, "rank": rank_by,
      "normalizer": config.eval.normalizer, "transforms": int(num_transforms),
      "seed": int(seed), "candidates": int(ranking.num_candidates),
      "n": len(rows), "indices": [r["index"] for r in rows],
      "scores": [r["score"] for r in rows], "image_ids": image_ids,
      "files": written + [JSON_FILE],
  }
  if next_workdir:
    result["next_workdir"] = write_next_workdir(workdir, next_workdir,
                                                ranking.indices)
  with open(os.path.join(out_dir, JSON_FILE), "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
  return result


# --------------------------------------------------------------------------
# command line


def define_flags(flag_values=flags.FLAGS):
  flags.DEFINE_string("workdir", None, "Directory of a trained run.",
                      flag_values=flag_values)
  flags.DEFINE_integer("n", 50, "How many images to suggest.",
                       flag_values=flag_values)
  flags.DEFINE_string("out", None, "Output directory (default "
                      "<workdir>/suggest).", flag_values=flag_values)
  flags.DEFINE_integer("transforms", 8, "Random transforms per image.",
                       flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Seed of the transforms (and of "
                       "--rank=random).", flag_values=flag_values)
  flags.DEFINE_enum("rank", "elt", list(RANKS), "elt: by ELT disagreement; "
                    "elt_in_frame: over the transforms that keep each point "
                    "in the image; random: a uniform draw (the baseline).",
                    flag_values=flag_values)
  flags.DEFINE_string("next_workdir", None, "Prepare a run with the "
                      "suggested images labelled too (simulated rounds).",
                      flag_values=flag_values)
  flags.DEFINE_integer("sheet", 24, "Images on the overlay sheet (0: none).",
                       flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 64, "Images per forward pass.",
                       flag_values=flag_values)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the best).",
                       flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "TFDS data dir of the run's dataset "
                      "(default: its config.data.data_dir).",
                      flag_values=flag_values)
  flags.DEFINE_bool("overwrite", False, "Replace an earlier suggestion's "
                    "files in --out.", flag_values=flag_values)
  flags.mark_flags_as_required(["workdir"], flag_values=flag_values)


EXIT_USAGE = 2


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  from landmark_ssl import metrics_log  # pylint: disable=g-import-not-at-top
  metrics_log.quiet_library_logs()
  try:
    result = run_suggest(FLAGS.workdir, FLAGS.n, FLAGS.out, FLAGS.transforms,
                         FLAGS.seed, FLAGS.rank, FLAGS.next_workdir,
                         FLAGS.sheet, FLAGS.batch_size, FLAGS.step,
                         FLAGS.data_dir, FLAGS.overwrite)
  except (OSError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(EXIT_USAGE)
  out = FLAGS.out or os.path.join(FLAGS.workdir, "suggest")
  print(f"{result['n']} of {result['candidates']} unlabelled training "
        f"images suggested ({result['rank']}); wrote "
        + ", ".join(os.path.join(out, f) for f in result["files"]) + ".")
  if result.get("next_workdir"):
    print(f"Next round's run: {result['next_workdir']}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
