"""The README's "Your own data" walk-through runs as written: its first
shell block, command by command, from a folder that has the repository's
experiments/ (as the repository root has), from a COCO file to suggest."""

import json
import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SECTION = "## Your own data (COCO keypoints)"


def walkthrough() -> str:
  """The first ```bash block of the section."""
  text = (REPO / "README.md").read_text()
  section = text[text.index(SECTION):]
  match = re.search(r"```bash\n(.*?)```", section, flags=re.S)
  return match[1]


def test_the_walkthrough_runs_as_written(tmp_path):
  code = walkthrough()
  assert "landmark_ssl.suggest" in code and "--format=coco" in code
  (tmp_path / "experiments").symlink_to(REPO / "experiments")
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                     if p])
  bin_dir = str(pathlib.Path(sys.executable).parent)
  env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
  proc = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=1800)
  assert proc.returncode == 0, proc.stderr[-5000:]
  demo = tmp_path / "coco_demo"
  coco = json.loads((demo / "blocks" / "annotations.json").read_text())
  predicted = json.loads(
      (demo / "predicted" / "coco_keypoints.json").read_text())
  assert [im["id"] for im in predicted["images"]] == [
      im["id"] for im in coco["images"]]
  assert [im["file_name"] for im in predicted["images"]] == [
      im["file_name"] for im in coco["images"]]
  assert (demo / "run" / "results.json").exists()
  ids = (demo / "run" / "suggest" / "coco_image_ids.txt").read_text().split()
  unlabelled = {a["image_id"] for a in coco["annotations"]
                if not a["num_keypoints"]}
  assert len(ids) == 20 and {int(i) for i in ids} <= unlabelled
  assert (demo / "run" / "suggest" / "overlay_sheet.png").exists()
