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
* ``pair_files``: annotation files and their images; either without the
  other is skipped (``SkipLog`` for annotations without their image, one
  warning with the count for images without annotation).
* ``SkipLog``: every file a build leaves out (a missing wrist point, a short
  label file, a landmark file without its image), one warning naming each
  and one summary with the counts per reason at the end.
* ``check_splits``: a split that would be empty is one error naming the
  split and why, instead of TFDS's "No examples were yielded" after writing.
* ``check_count``: a ``DataCountWarning`` when a split's size differs from
  the paper's.
"""

from __future__ import annotations

import os
import warnings
from typing import Iterable, Mapping, Sized

from etils import epath

# How many offending file names an error or warning lists.
MAX_LISTED = 5
# The SkipLog reason of an annotation file whose image is missing.
NO_IMAGE = "annotation file without its image"


class ManualDataError(Exception):
  """The manually downloaded data is missing, incomplete or malformed."""


class AnnotationFormatError(ManualDataError):
  """An annotation file (``.pts``, ``.xml``, ``.mat``) does not parse."""


class DataCountWarning(UserWarning):
  """A split (or the number of classes) differs from the paper's numbers."""


class UnannotatedImageWarning(UserWarning):
  """Images without annotation file were found and skipped."""


class SkippedFileWarning(UserWarning):
  """One annotated file was left out of the build (the message says why)."""


class SkipSummaryWarning(UserWarning):
  """The end-of-build count of the files left out, by reason."""


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


class SkipLog:
  """The files a build leaves out, by reason, and their end-of-build summary.

  A real dataset has a few files that cannot be used (an image whose wrist
  points are not annotated, a label file with 66 instead of 68 points, a
  label file whose image is missing). Each is skipped, never an abort: one
  ``SkippedFileWarning`` names the file and the reason at once, and
  :meth:`summarize` (called once all files are read, before any record is
  written) gives one ``SkipSummaryWarning`` with the count per reason and a
  few examples each. ``counts`` keeps the numbers for the caller.

  Args:
    dataset: dataset name, for the messages.
  """

  def __init__(self, dataset: str):
    self.dataset = dataset
    self.skipped: dict[str, list[str]] = {}

  def skip(self, path: os.PathLike | str, reason: str,
           detail: str = "") -> None:
    """Records ``path`` as left out for ``reason`` (a short category such as
    ``"no wrist point"``); ``detail`` says more about this one file."""
    self.skipped.setdefault(reason, []).append(str(path))
    more = f" ({detail})" if detail else ""
    warnings.warn(SkippedFileWarning(
        f"{self.dataset}: skipping {path}: {reason}{more}."), stacklevel=2)

  @property
  def counts(self) -> dict[str, int]:
    return {reason: len(paths) for reason, paths in self.skipped.items()}

  def summary(self) -> str | None:
    """The summary text, or None when nothing was skipped."""
    if not self.skipped:
      return None
    total = sum(self.counts.values())
    lines = [f"{self.dataset}: {total} file(s) left out of the build:"]
    for reason, paths in sorted(self.skipped.items()):
      lines.append(f"- {reason}: {len(paths)}, e.g.:")
      lines.append(_listing(paths))
    return "\n".join(lines)

  def summarize(self) -> None:
    """Warns once (``SkipSummaryWarning``) with :meth:`summary`, if any."""
    text = self.summary()
    if text:
      warnings.warn(SkipSummaryWarning(text), stacklevel=2)


def check_splits(dataset: str, splits: Mapping[str, Sized],
                 causes: Mapping[str, str] | None = None) -> None:
  """Raises one ``ManualDataError`` naming every split that would be empty.

  TFDS would otherwise write the other splits and then stop with
  ``Failed to finalize writing of split ...: No examples were yielded``.

  Args:
    dataset: dataset name.
    splits: split name -> its items, as about to be written.
    causes: split name -> what fills it (e.g. ``"subjects 11-12"`` or
      ``"10% of the training images"``), so the message says what is missing.
  """
  causes = causes or {}
  empty = [name for name, items in splits.items() if len(items) == 0]
  if empty:
    sizes = ", ".join(f"{n}: {len(v)}" for n, v in splits.items())
    what = "; ".join(
        f"split '{n}' ({causes[n]})" if n in causes else f"split '{n}'"
        for n in empty)
    raise ManualDataError(
        f"{dataset}: no images for {what}. Split sizes would be: {sizes}. "
        "The manual folder holds too few (or the wrong) files for this "
        "split: extract the complete archives, or change the builder config "
        "that defines the split.")


def pair_files(annotations: Mapping[str, epath.Path],
               images: Mapping[str, epath.Path], dataset: str,
               warn_unannotated: bool = True,
               skips: SkipLog | None = None) -> list[str]:
  """Keys present in both mappings, sorted; reports the orphans.

  Policy: an annotation without its image is skipped and recorded in
  ``skips`` ("annotation file without its image", one warning each and a
  count in the build's summary); an image without annotation is skipped
  with one ``UnannotatedImageWarning`` giving the count (unless
  ``warn_unannotated`` is false: datasets where most images have no
  annotations by design, like Multi-PIE).

  Args:
    annotations: key (e.g. ``"helen/trainset/100032540_1"``) -> annotation
      file.
    images: same keys -> image file.
    dataset: dataset name, for the messages.
    warn_unannotated: whether images without annotation are worth a warning.
    skips: where skipped annotation files are recorded (a fresh ``SkipLog``
      that summarises at once if None).
  """
  no_image = set(annotations) - set(images)
  if no_image:
    own = skips is None
    skips = SkipLog(dataset) if own else skips
    for k in sorted(no_image):
      skips.skip(annotations[k], NO_IMAGE,
                 "extract the image archives completely into the manual "
                 "folder to keep it")
    if own:
      skips.summarize()
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
