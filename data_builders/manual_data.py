"""Checks on manually downloaded dataset files, with messages that name the fix.

The real datasets (HGR1, Multi-PIE, 300W) cannot be downloaded by their
builders, so the user places them in TFDS's ``manual_dir``. Everything here
runs in a builder's ``_split_generators``, before TFDS writes any record, so
bad input never leaves a half-written dataset behind:

* ``ManualDataError`` (and its subclass ``AnnotationFormatError``): the one
  exception type a build CLI should catch and print as is (``str(e)``); each
  message names the file or folder, what was expected, and what to do.
* ``manual_root``: the manual folder, or one clear error with the expected
  layout and the download instructions.
* ``pair_files``: annotation files and their images; an annotation without
  its image is an error, an image without annotation is a warning.
* ``check_count``: a ``DataCountWarning`` when a split's size differs from
  the paper's.
"""

from __future__ import annotations

import os
import warnings
from typing import Iterable, Mapping

from etils import epath

# How many offending file names an error or warning lists.
MAX_LISTED = 5


class ManualDataError(Exception):
  """The manually downloaded data is missing, incomplete or malformed."""


class AnnotationFormatError(ManualDataError):
  """An annotation file (``.pts``, ``.xml``, ``.mat``) does not parse."""


class DataCountWarning(UserWarning):
  """A split (or the number of classes) differs from the paper's numbers."""


class UnannotatedImageWarning(UserWarning):
  """Images without annotation file were found and skipped."""


def _listing(names: Iterable[str]) -> str:
  names = sorted(names)
  shown = "\n".join(f"  {n}" for n in names[:MAX_LISTED])
  more = len(names) - MAX_LISTED
  return shown + (f"\n  ... and {more} more" if more > 0 else "")


def format_error(path: os.PathLike | str, where: str, expected: str,
                 found: str) -> AnnotationFormatError:
  """An ``AnnotationFormatError`` naming the file, the place, the expectation.

  Args:
    path: the file.
    where: e.g. ``"line 4"`` or ``"key 'pts'"``.
    expected: what the parser expected there.
    found: what it found (shortened by the caller if long).
  """
  return AnnotationFormatError(
      f"{path}, {where}: expected {expected}, found {found}. The file is "
      "malformed or not from the expected release; re-extract it from the "
      "original archive.")


def manual_root(dl_manager, dataset: str, layout: str,
                instructions: str) -> epath.Path:
  """The manual folder of ``dl_manager``, or a ``ManualDataError``.

  Args:
    dl_manager: the ``tfds.download.DownloadManager`` given to
      ``_split_generators``.
    dataset: dataset name, for the message.
    layout: the expected folder layout, shown in the message.
    instructions: the builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``.

  Raises:
    ManualDataError: the folder is missing or empty (TFDS's own
      ``AssertionError`` is replaced by this one clean message).
  """
  try:
    return epath.Path(dl_manager.manual_dir)
  except AssertionError:
    # TFDS raises AssertionError for a missing or empty folder; the path it
    # was given is only kept privately.
    given = getattr(dl_manager, "_manual_dir", None)
    raise ManualDataError(
        f"{dataset}: the manual download folder {given} is missing or empty. "
        f"It must hold:\n{layout}\n{instructions}\nThen build again with "
        "that folder as manual_dir.") from None


def require_paths(root: epath.Path, relative: Iterable[str], dataset: str,
                  layout: str, instructions: str) -> None:
  """Raises one ``ManualDataError`` listing every missing required path."""
  missing = [r for r in relative if not (root / r).exists()]
  if missing:
    raise ManualDataError(
        f"{dataset}: {root} lacks {', '.join(missing)}. Expected layout:\n"
        f"{layout}\n{instructions}")


def pair_files(annotations: Mapping[str, epath.Path],
               images: Mapping[str, epath.Path], dataset: str,
               warn_unannotated: bool = True) -> list[str]:
  """Keys present in both mappings, sorted; reports the orphans.

  Policy: an annotation without its image is an error (a broken or partial
  extraction that would silently change the splits), listing the first
  ``MAX_LISTED`` of them and their count; an image without annotation is
  skipped with one ``UnannotatedImageWarning`` giving the count (unless
  ``warn_unannotated`` is false: datasets where most images have no
  annotations by design, like Multi-PIE).

  Args:
    annotations: key (e.g. ``"helen/trainset/100032540_1"``) -> annotation
      file.
    images: same keys -> image file.
    dataset: dataset name, for the messages.
    warn_unannotated: whether images without annotation are worth a warning.

  Raises:
    ManualDataError: some annotation files have no image.
  """
  no_image = set(annotations) - set(images)
  if no_image:
    raise ManualDataError(
        f"{dataset}: {len(no_image)} annotation file(s) have no image of the "
        f"same name next to them, e.g.:\n"
        f"{_listing(str(annotations[k]) for k in no_image)}\n"
        "Extract the image archives completely into the manual folder.")
  no_annotation = set(images) - set(annotations)
  if no_annotation and warn_unannotated:
    warnings.warn(UnannotatedImageWarning(
        f"{dataset}: skipping {len(no_annotation)} image(s) without an "
        f"annotation file, e.g.:\n"
        f"{_listing(str(images[k]) for k in no_annotation)}"), stacklevel=2)
  return sorted(set(annotations) & set(images))


def check_count(dataset: str, what: str, found: int, expected: int) -> None:
  """Warns (``DataCountWarning``) when ``found != expected``.

  Args:
    dataset: dataset name.
    what: e.g. ``"split 'train'"`` or ``"gesture classes"``.
    found: the number in the user's data.
    expected: the paper's number.
  """
  if found != expected:
    warnings.warn(DataCountWarning(
        f"{dataset}: {what} has {found} items; the paper has {expected}. "
        "Results may not be comparable with the paper's (incomplete or "
        "different release of the data?)."), stacklevel=2)
