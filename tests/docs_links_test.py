"""The README and docs/ link only to files that exist in the repository."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
  broken = []
  for target in LINK.findall(doc.read_text()):
    if re.match(r"^[a-z]+:", target) or target.startswith("#"):
      continue  # a URL or an anchor in the same file
    path = (doc.parent / target.split("#", 1)[0]).resolve()
    if not path.exists():
      broken.append(target)
  assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"
