"""landmark_ssl: semi-supervised landmark localization in JAX/Flax.

Implements Honari et al., "Improving Landmark Localization with
Semi-Supervised Learning" (CVPR 2018): sequential multi-tasking (Seq-MT,
class labels train the landmark net through a soft-argmax) and the
equivariant landmark transformation (ELT) cost.

Modules depend one way: geometry <- losses <- models <- steps <- train <- main.
Importing the package itself imports nothing heavy; import the module you need
(``landmark_ssl.geometry``, ``landmark_ssl.losses``, ...).

A trained run from Python (``trained_run``, imported on first use)::

  run = landmark_ssl.load_run("runs/quick")  # config, model, best params
  landmarks = run.predict(images)  # (N, H, W, C) -> (N, K, 2)
"""

__version__ = "0.1.0"

_TRAINED_RUN = ("load_run", "TrainedRun")


def __getattr__(name):
  if name in _TRAINED_RUN:
    from landmark_ssl import trained_run  # pylint: disable=g-import-not-at-top
    return getattr(trained_run, name)
  raise AttributeError(f"module 'landmark_ssl' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_TRAINED_RUN))
