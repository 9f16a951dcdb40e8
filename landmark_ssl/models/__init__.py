"""Flax models and the config-name registry.

Every model is called as ``model.apply(variables, images, train=...,
rngs={'dropout': key})`` on ``(N, H, W, C)`` images and returns one dict:

* ``landmarks``: ``(N, K, 2)`` predicted ``(x, y)`` pixels;
* ``maps``: ``(N, H, W, K)`` landmark maps (soft-argmax input or heatmap
  logits), ``None`` for models without maps (Comm-MT);
* ``logits``: ``{head_name: (N, num_classes)}``, empty without a classifier.

Each model class says how its landmarks are trained with ``landmark_cost``:
``'coordinates'`` (L2 on ``landmarks``, :func:`losses.landmark_loss`) or
``'heatmap'`` (pixel NLL on ``maps``, :func:`losses.heatmap_landmark_loss`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from landmark_ssl.models.comm_mt import CommMT
from landmark_ssl.models.heatmap_mt import HeatmapMT
from landmark_ssl.models.rcn import RCN
from landmark_ssl.models.seq_mt import SeqMT

MODELS = {
    "seq_mt": SeqMT,
    "comm_mt": CommMT,
    "heatmap_mt": HeatmapMT,
    "rcn": RCN,
}

_DERIVED = ("num_landmarks", "heads")


def _freeze(value):
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  return value


def create_model(model_config: Mapping, num_landmarks: int,
                 heads: Mapping[str, int] | tuple = ()):
  """Builds the model named ``model_config['name']``.

  Args:
    model_config: ``name`` (a key of ``MODELS``) plus any attributes of that
      model class (e.g. ``kernel_sizes``, ``features``, ``beta``); missing
      ones take the class defaults.
    num_landmarks: K, from the dataset.
    heads: ``{head_name: num_classes}`` (or pairs) of the classifier branches,
      from the dataset and the costs; empty for none.
  """
  cfg = dict(model_config)
  name = cfg.pop("name", None)
  if name not in MODELS:
    raise ValueError(f"Unknown model {name!r} (config.model.name); choose one "
                     f"of {sorted(MODELS)}.")
  cls = MODELS[name]
  fields = {f.name for f in dataclasses.fields(cls)
            if f.init and f.name not in ("parent", "name")}
  settable = sorted(fields - set(_DERIVED))
  for key in cfg:
    if key in _DERIVED:
      raise ValueError(f"config.model.{key} is derived from the dataset and "
                       "cannot be set; remove it.")
    if key not in fields:
      raise ValueError(f"config.model.{key} is not a setting of model {name!r}; "
                       f"its settings are {settable}.")
  heads = tuple(heads.items()) if isinstance(heads, Mapping) else tuple(heads)
  kwargs = {k: _freeze(v) for k, v in cfg.items()}
  return cls(num_landmarks=num_landmarks, heads=tuple(heads), **kwargs)


__all__ = ["MODELS", "create_model", "SeqMT", "CommMT", "HeatmapMT", "RCN"]
