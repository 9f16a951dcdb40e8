"""The captions of the PNG figures in a folder, kept beside them.

``figures`` records each figure's caption when it draws it; ``report``
reads them to title its links. A PNG without an entry (drawn by another
tool, or before this file existed) is titled by its file name.
"""

from __future__ import annotations

import json
import os
from typing import Dict

from landmark_ssl import rundir

MANIFEST_FILE = rundir.FIGURE_CAPTIONS


def read(folder: str) -> Dict[str, str]:
  """``{png file name: caption}`` of ``folder`` (empty if none or unreadable)."""
  try:
    with open(os.path.join(folder, MANIFEST_FILE)) as f:
      data = json.load(f)
  except (OSError, ValueError):
    return {}
  return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record(folder: str, file_name: str, caption: str) -> None:
  """Adds (or replaces) one figure's caption; written atomically."""
  data = read(folder)
  data[file_name] = caption
  path = os.path.join(folder, MANIFEST_FILE)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(data, f, indent=1, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)
