"""Inference on new images: the crop is the builders' crop, landmarks come
back in original pixels (checked with known affines), outputs are complete,
and bad images / boxes / workdirs give clear errors."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_builders import crop
from landmark_ssl import figures
from landmark_ssl import predict
from landmark_ssl import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_box_crop_is_the_builders_crop(fresh_seed):
  """A box that is the landmarks' bounding box gives the builder's affine."""
  rng = np.random.default_rng(fresh_seed)
  for enlarge, size in ((1.3, 80), (1.5, 64)):
    landmarks = rng.uniform([40, 30], [260, 170], (12, 2))
    box = (*landmarks.min(0), *landmarks.max(0))
    image = rng.integers(0, 255, (200, 300), dtype=np.uint8)
    want = crop.crop_around_landmarks(image, landmarks, None, size, enlarge)
    got = predict.input_affine(300, 200, box, enlarge, size)
    np.testing.assert_allclose(got, want.affine, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(crop.apply_affine(landmarks, got),
                               want.landmarks, atol=1e-3)
    np.testing.assert_array_equal(
        (predict.model_input(image, got, size)[..., 0] * 255).round(),
        want.image)


@pytest.mark.parametrize("width,height", [(130, 70), (45, 160), (64, 64)])
def test_whole_image_is_letterboxed(width, height, fresh_seed):
  size = 60
  a = predict.input_affine(width, height, None, 1.3, size)
  # The image's outer edges on the long side go to the input's edges, its
  # centre to the input's centre, without rotation or stretch.
  side = max(width, height)
  assert a[0, 0] == a[1, 1] == pytest.approx(size / side)
  assert a[0, 1] == a[1, 0] == 0
  np.testing.assert_allclose(
      crop.apply_affine([[(width - 1) / 2, (height - 1) / 2]], a),
      [[(size - 1) / 2] * 2])
  corners = crop.apply_affine([[-0.5, -0.5], [width - 0.5, height - 0.5]], a)
  assert corners.min() >= -0.5 - 1e-9 and corners.max() <= size - 0.5 + 1e-9
  long_axis = 0 if width >= height else 1
  assert corners[:, long_axis] == pytest.approx([-0.5, size - 0.5])
  # to_original inverts it.
  pts = np.random.default_rng(fresh_seed).uniform(0, size - 1, (3, 7, 2))
  back = predict.to_original(pts, np.broadcast_to(a, (3, 2, 3)))
  np.testing.assert_allclose(crop.apply_affine(back, a), pts, atol=1e-3)


def test_boxes_parse_and_errors(tmp_path):
  assert predict.parse_box("1,2.5,30,40") == (1.0, 2.5, 30.0, 40.0)
  for bad, match in (("1,2,3", "four numbers"), ("a,b,c,d", "four numbers"),
                     ("5,5,1,9", "empty"), ("1,2,3,nan", "four numbers")):
    with pytest.raises(ValueError, match=match):
      predict.parse_box(bad)
  js = tmp_path / "b.json"
  js.write_text(json.dumps({"dir/a.jpg": [0, 0, 10, 10], "b.png": [1, 2, 3, 4]}))
  boxes = predict.read_boxes(str(js))
  assert predict.box_for("dir/a.jpg", boxes) == (0, 0, 10, 10)
  assert predict.box_for("/elsewhere/b.png", boxes) == (1, 2, 3, 4)
  assert predict.box_for("c.png", boxes) is None
  cs = tmp_path / "b.csv"
  cs.write_text("file,x0,y0,x1,y1\na.jpg,0,0,10,12\nb.jpg,3,3,1,1\n")
  with pytest.raises(ValueError, match="b.csv, line 3: box"):
    predict.read_boxes(str(cs))
  cs.write_text("name,left\na.jpg,0\n")
  with pytest.raises(ValueError, match="header file,x0,y0,x1,y1"):
    predict.read_boxes(str(cs))
  js.write_text("[1, 2]")
  with pytest.raises(ValueError, match="expected a JSON object"):
    predict.read_boxes(str(js))
  with pytest.raises(ValueError, match="not both"):
    predict.run_predict("w", ["a.jpg"], "o", box="0,0,1,1",
                        boxes_file=str(js))
  assert predict.overlay_names(["a/x.jpg", "b/x.png", "y.jpg"]) == [
      "x.png", "x_2.png", "y.png"]


def test_unreadable_image_names_the_file(tmp_path, fresh_seed):
  bad = tmp_path / "bad.jpg"
  bad.write_bytes(b"\xff\xd8 this is not a jpeg")
  with pytest.raises(predict.ImageError, match="bad.jpg: cannot read"):
    predict.read_image(str(bad), 1)
  with pytest.raises(predict.ImageError, match="nope.png: no such file"):
    predict.read_image(str(tmp_path / "nope.png"), 1)
  rgb = np.random.default_rng(fresh_seed).integers(0, 255, (5, 7, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / "c.png")
  grey = predict.read_image(str(tmp_path / "c.png"), 1)
  np.testing.assert_array_equal(grey, np.asarray(Image.fromarray(rgb).convert("L")))
  assert predict.read_image(str(tmp_path / "c.png"), 3).shape == (5, 7, 3)


def _png_claiming(path, width, height):
  """A PNG whose header claims ``width x height`` pixels (a decompression
  bomb's header; its data is a 1x1 image's)."""
  import struct  # pylint: disable=g-import-not-at-top
  import zlib  # pylint: disable=g-import-not-at-top
  Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
  data = bytearray(path.read_bytes())
  start = data.index(b"IHDR")
  data[start + 4:start + 12] = struct.pack(">II", width, height)
  crc = zlib.crc32(bytes(data[start:start + 17]))
  data[start + 17:start + 21] = struct.pack(">I", crc)
  path.write_bytes(bytes(data))


class _StubPredictor:
  """predict_files' view of a Predictor: a model that puts landmark 0 at
  the input's centre (no checkpoint needed)."""
  batch_size, channels, size, enlarge = 4, 1, 8, 1.0

  class run:  # pylint: disable=invalid-name
    step = 0

    class config:  # pylint: disable=invalid-name
      costs = "L"

      class data:  # pylint: disable=invalid-name
        name = "stub"

      class model:  # pylint: disable=invalid-name
        name = "stub"

    class info:  # pylint: disable=invalid-name
      landmark_names = ()

  def predict(self, inputs):
    return {"landmarks": np.full((len(inputs), 1, 2), 3.5), "logits": {}}

  def classes(self, logits, i):
    return {}


def test_hostile_images_are_named_and_skipped(tmp_path, caplog):
  """Issue 24 item 7: a decompression bomb is refused unread (naming it and
  --max_pixels) while the good images are done; a 16-bit PNG is scaled, not
  clipped; a box outside its image is refused, one reaching out warned."""
  bomb = tmp_path / "bomb.png"
  _png_claiming(bomb, 20000, 20000)
  with pytest.raises(predict.ImageError) as info:
    predict.load_image(str(bomb))
  message = str(info.value)
  assert message.startswith(f"{bomb}: 20000x20000 = 400000000 pixels, over "
                            f"--max_pixels={Image.MAX_IMAGE_PIXELS}")
  assert "pass --max_pixels=400000000" in message
  with pytest.raises(predict.ImageError, match="over --max_pixels=10 "):
    predict.load_image(str(bomb), max_pixels=10)
  # 16 bits: 65535 is white, 257 * v is v (PIL alone clips to 0 / 255).
  values = np.arange(0, 65536, 257, dtype=np.uint16)[:256].reshape(16, 16)
  Image.fromarray(values).save(tmp_path / "deep.png")
  with Image.open(tmp_path / "deep.png") as img:
    assert img.mode.startswith("I;16")
  np.testing.assert_array_equal(
      predict.read_image(str(tmp_path / "deep.png"), 1),
      np.arange(256).reshape(16, 16))
  assert predict.read_image(str(tmp_path / "deep.png"), 3).shape == (16, 16, 3)
  # A whole call: the bomb and a box off the image are errors naming the
  # file; a box reaching out is a warning; the good images are done.
  for name in ("a.png", "b.png", "c.png"):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / name)
  boxes = {"b.png": (100, 100, 120, 110), "c.png": (20, 5, 40, 15)}
  with caplog.at_level("WARNING"):
    result = predict.predict_files(
        _StubPredictor(), [str(tmp_path / n) for n in
                           ("a.png", "bomb.png", "b.png", "c.png")],
        str(tmp_path / "out"), boxes, overlays=False)
  assert [os.path.basename(r["file"]) for r in result["images"]] == [
      "a.png", "c.png"]
  errors = {os.path.basename(e["file"]): e["error"] for e in result["errors"]}
  assert "20000x20000" in errors["bomb.png"]
  assert errors["b.png"] == (
      f"{tmp_path / 'b.png'}: box [100, 100, 120, 110] lies entirely outside "
      "the 30x20 image (x in [-0.5, 29.5], y in [-0.5, 19.5]); check its "
      "coordinates (original-image pixels, x0,y0,x1,y1).")
  warnings = " ".join(r.getMessage() for r in caplog.records)
  assert (f"{tmp_path / 'c.png'}: box [20, 5, 40, 15] reaches outside the "
          "30x20 image") in warnings


def _stored_example(run_dir, position):
  pred = rundir.read_predictions(os.path.join(run_dir, "predictions_test.npz"))
  config = json.loads((run_dir / "config.json").read_text())
  index = pred["index"][position]
  batch = figures.dataset_examples(figures.data_config_of(config, None), "test",
                                   np.array([index]))
  image = np.round(batch["image"][0, ..., 0] * 255).astype(np.uint8)
  return image, pred["pred_landmarks"][position]


def test_landmarks_map_back_through_a_known_affine(tiny_blocks_run, tmp_path):
  """Stored test images embedded in larger photos by known affines A (the
  box given is the region the stored image covers): the predicted landmarks
  in the photo's pixels are A of the model's landmarks on the stored image.

  The first two embeddings make the model's input exactly the stored image
  (an integer shift; 2x pixel replication at an even offset, which the crop
  undoes exactly with a 2x2 box filter); the third (scale 2.5, fractional
  shift) resamples, so there the landmarks are checked against the model's
  output on the input predict made, mapped back independently (float64).
  """
  run = tiny_blocks_run.workdir
  predictor = predict.Predictor.load(str(run), batch_size=8)
  assert (predictor.size, predictor.channels, predictor.enlarge) == (60, 1, 1.0)
  cases = []
  for i, (kind, ox, oy) in enumerate(
      [("shift", 41, 17), ("replicate", 38, 12), ("resample", 33.3, 12.7)]):
    image, stored_pred = _stored_example(run, 7 * i + 3)
    if kind == "resample":
      a = np.array([[2.5, 0.0, ox], [0.0, 2.5, oy]])
      photo = crop.warp_image(image, a, (230, 250))
    else:
      s = 1 if kind == "shift" else 2
      # Photo pixel s*i + r (r < s) copies stored pixel i: x -> s x + (s-1)/2.
      a = np.array([[s, 0.0, ox + (s - 1) / 2], [0.0, s, oy + (s - 1) / 2]])
      photo = np.zeros((230, 250), np.uint8)
      photo[oy:oy + 60 * s, ox:ox + 60 * s] = np.kron(
          image, np.ones((s, s), np.uint8))
    path = tmp_path / f"{kind}.png"
    rgb = kind == "replicate"  # a colour file is read as grey, as the builders
    Image.fromarray(np.stack([photo] * 3, -1) if rgb else photo).save(path)
    # The box: the stored image's pixel edges (-0.5, 59.5), mapped by A.
    box = (*crop.apply_affine([-0.5, -0.5], a), *crop.apply_affine([59.5, 59.5], a))
    cases.append((kind, str(path), box, a, image, stored_pred))
  boxes = {os.path.basename(c[1]): c[2] for c in cases}
  result = predict.predict_files(predictor, [c[1] for c in cases],
                                 str(tmp_path / "out"), boxes)
  assert not result["errors"] and len(result["images"]) == 3
  for (kind, path, box, a, image, stored_pred), record in zip(
      cases, result["images"]):
    got = np.asarray(record["landmarks"])
    assert record["file"] == path
    np.testing.assert_allclose(record["box"], box)
    crop_affine = np.asarray(record["crop"])
    np.testing.assert_allclose(crop_affine @ np.r_[a, [[0, 0, 1]]],
                               np.eye(2, 3), atol=1e-9)  # the crop undoes A
    model_in = predict.model_input(predict.read_image(path, 1), crop_affine, 60)
    if kind != "resample":
      np.testing.assert_array_equal(np.round(model_in[..., 0] * 255), image)
      np.testing.assert_allclose(got, crop.apply_affine(stored_pred, a),
                                 atol=1e-3, err_msg=kind)
    else:
      assert np.abs(model_in[..., 0] * 255 - image).mean() < 8
      on_input = predictor.predict(model_in[None])["landmarks"][0]
      inverse = np.linalg.inv(np.r_[crop_affine, [[0, 0, 1]]])[:2]
      np.testing.assert_allclose(got, crop.apply_affine(on_input, inverse),
                                 atol=1e-3)
      np.testing.assert_allclose(got, crop.apply_affine(on_input, a), atol=1e-3)
    assert set(record["classes"]) == {"label"}
    probs = record["classes"]["label"]["probabilities"]
    assert len(probs) == 15 and sum(probs.values()) == pytest.approx(1.0)
    assert max(probs, key=probs.get) == record["classes"]["label"]["label"]
    assert os.path.exists(tmp_path / "out" / record["overlay"])


def test_cli_outputs_and_bad_image(tiny_blocks_run, tmp_path):
  run = tiny_blocks_run.workdir
  image, _ = _stored_example(run, 0)
  photo = np.zeros((100, 140), np.uint8)
  photo[20:80, 40:100] = image
  Image.fromarray(photo).save(tmp_path / "good.png")
  (tmp_path / "broken.jpg").write_bytes(b"not an image")
  (tmp_path / "boxes.csv").write_text("file,x0,y0,x1,y1\ngood.png,39.5,19.5,"
                                      "99.5,79.5\n")
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.predict", f"--workdir={run}",
       f"--images={tmp_path / 'broken.jpg'}", f"--out={out}",
       f"--boxes={tmp_path / 'boxes.csv'}", str(tmp_path / "good.png")],
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "broken.jpg: cannot read the image" in proc.stderr
  assert "1 image(s) done, 1 failed" in proc.stdout
  result = json.loads((out / "landmarks.json").read_text())
  (record,) = result["images"]
  assert record["file"].endswith("good.png") and record["box"] == [
      39.5, 19.5, 99.5, 79.5]
  assert result["errors"][0]["file"].endswith("broken.jpg")
  assert result["workdir"] == str(run) and result["dataset"] == "blocks/small"
  rows = list(csv.DictReader(open(out / "landmarks.csv")))
  assert [int(r["landmark"]) for r in rows] == list(range(5))
  np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in rows],
                             record["landmarks"], atol=1e-3)
  with Image.open(out / "overlays" / "good.png") as img:
    assert img.format == "PNG" and img.size[0] > 200
  # Nothing readable, a pattern that matched nothing, a boxes file of other
  # images: exit 2, named, and nothing written.
  (tmp_path / "other.csv").write_text("file,x0,y0,x1,y1\nelse.png,1,1,9,9\n")
  for args, message in (
      ([str(tmp_path / "broken.jpg")], "None of the 1 image(s) could be read, "
       "so nothing was written: " + str(tmp_path / "broken.jpg")),
      ([str(tmp_path / "photos" / "*.jpg")], "No image file found: "
       f"{str(tmp_path / 'photos' / '*.jpg')!r} is not a file (a pattern"),
      ([f"--boxes={tmp_path / 'other.csv'}", str(tmp_path / "good.png")],
       f"--boxes={tmp_path / 'other.csv'} has a box for none of the 1 "
       "image(s): it names e.g. 'else.png'")):
    proc = subprocess.run(
        [sys.executable, "-m", "landmark_ssl.predict", f"--workdir={run}",
         f"--out={tmp_path / 'none'}"] + args,
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr, proc.stderr[-3000:]
    assert not list((tmp_path / "none").rglob("*.*"))


def test_cli_without_checkpoint(tiny_blocks_run, tmp_path):
  (tmp_path / "config.json").write_text(
      (tiny_blocks_run.workdir / "config.json").read_text())
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.predict", f"--workdir={tmp_path}",
       f"--images={tmp_path / 'a.png'}", f"--out={tmp_path / 'out'}"],
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert "has no checkpoint" in proc.stderr and "landmark_ssl.main" in proc.stderr
  proc = subprocess.run(
      [sys.executable, "-m", "landmark_ssl.predict",
       f"--workdir={tmp_path / 'nothing'}", f"--images={tmp_path / 'a.png'}",
       f"--out={tmp_path / 'out'}"],
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and "no config.json" in proc.stderr


def test_out_with_earlier_outputs_is_refused_unless_overwrite(tmp_path):
  """Files of the names predict writes are not replaced without
  --overwrite, and the refusal comes before the run is loaded; other files
  in --out do not matter."""
  out = tmp_path / "out"
  (out / predict.OVERLAY_DIR).mkdir(parents=True)
  mine = f"mine {np.random.default_rng().integers(1 << 30)}"
  (out / "notes.txt").write_text(mine)
  paths = ["a/x.jpg", "b/x.png"]
  # Nothing of predict's there: allowed, and it goes on to the next check
  # (the images do not exist).
  with pytest.raises(ValueError, match="No image file found: 'a/x.jpg'"):
    predict.run_predict("w", paths, str(out))
  (out / predict.OVERLAY_DIR / "x_2.png").write_text(mine)
  for overlays, refused in ((True, True), (False, False)):
    names = predict.output_paths(paths, overlays, "json")
    if refused:
      with pytest.raises(FileExistsError,
                         match=r"already holds overlays/x_2.png\. Pass "
                         "--overwrite to replace them, or give another --out"):
        predict.check_out_dir(str(out), names, overwrite=False)
    else:
      predict.check_out_dir(str(out), names, overwrite=False)
  with pytest.raises(FileExistsError, match="overlays/x_2.png"):
    predict.run_predict("w", paths, str(out))
  (out / predict.JSON_FILE).write_text(mine)
  with pytest.raises(FileExistsError, match=f"{predict.JSON_FILE}, overlays"):
    predict.check_out_dir(str(out), predict.output_paths(paths, True, "coco"),
                          overwrite=False)
  predict.check_out_dir(str(out), predict.output_paths(paths, True, "coco"),
                        overwrite=True)
  assert (out / "notes.txt").read_text() == mine
  with pytest.raises(ValueError, match="--out=.*notes.txt is a file"):
    predict.check_out_dir(str(out / "notes.txt"), ["landmarks.json"], False)
