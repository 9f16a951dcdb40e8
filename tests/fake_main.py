"""``landmark_ssl.main`` on the in-memory fixture pipeline (for subprocess tests).

  python tests/fake_main.py --config=tests/tiny_config.py --workdir=...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fake_pipeline  # pylint: disable=g-import-not-at-top

sys.modules["landmark_ssl.input_pipeline"] = fake_pipeline

from absl import app  # pylint: disable=g-import-not-at-top
from landmark_ssl import main  # pylint: disable=g-import-not-at-top

if __name__ == "__main__":
  app.run(main.main_without_help, flags_parser=main.parse_flags)
