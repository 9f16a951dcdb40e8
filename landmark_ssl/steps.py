"""The training and evaluation steps, and how they are compiled on a mesh.

``train_step(state, batch, rng)`` and ``eval_step(state, batch)`` are pure:
everything they need is in their arguments. ``state`` is a :class:`TrainState`
(a flax ``TrainState``: ``step``, ``params``, ``opt_state`` are arrays; the
model's ``apply_fn``, the optax transformation ``tx`` and the cost
:class:`StepSettings` are static fields). ``batch`` is the dict of the input
pipeline (docs/DESIGN.md, "Conventions"): ``image (B, H, W, C)``, ``landmarks
(B, K, 2)``, ``visible (B, K)``, ``has_landmarks (B,)``, ``labels {head:
(B,)}``, ``normalizer (B,)``, ``mask (B,)``.

The cost (the paper's eq. 3-4), with the terms switched on by ``config.costs``::

  total = [L] landmark_weight * landmark + [C] alpha * sum_heads NLL_head
          + [T] gamma * ELT + lambda * sum ||W||^2

* ``L``: ``losses.landmark_loss`` on the predicted coordinates, or
  ``losses.heatmap_landmark_loss`` on the maps, as the model's
  ``landmark_cost`` says; only images with ``has_landmarks``, masked by
  ``visible``; averaged over the labelled images
  (``config.loss.landmark_mean='labeled'``) or, as eq. 3 is written, over
  all images of the batch (``'all'``).
* ``C``: class NLL of every head of ``config.data.class_heads``.
* ``T``: ``losses.equivariance_loss`` between ``T(L(I))`` and ``L(T(I))``, a
  fresh ``geometry.random_affine`` per image per step from ``config.loss.elt``,
  on images without landmark labels (``config.loss.elt_on='unlabeled'``) or
  on all (``'all'``); both branches carry gradients unless
  ``config.loss.elt_stop_gradient`` stops one (``'original'`` or
  ``'warped'``; ``'none'``, the paper's, by default). Originals and warped
  images go through the network in **one** forward pass: they are interleaved
  (``[I_0, T_0(I_0), I_1, T_1(I_1), ...]``), so each device's shard of the
  ``2B`` batch holds exactly the pairs of its own ``B / D`` images and the
  sharding needs no communication.
* Augmentation (``augment.augment``) is applied first, on device.

Compilation: :func:`jit_train_step` / :func:`jit_eval_step` use ``jax.jit``
on a ``('data',)`` mesh: state replicated, batch sharded along its leading
axis, the state donated. The same code runs on 1 or N devices and on many
hosts (:func:`global_batch` assembles the per-process batches).

Several runs at once (:func:`train_steps`, :func:`eval_steps`): ``S``
independent runs of the same shapes (e.g. the seeds of one table cell) are
``jax.vmap`` of the same ``train_step`` / ``eval_step`` over a leading run
axis of the state, the batches and the keys. The run axis is replicated and
each run's batch axis stays sharded on ``'data'`` (``P(None, 'data')``):
every device computes its ``B / D`` rows of every run, so each run sees
exactly the data layout (and the gradient all-reduce) it would see alone,
and ``S`` need not divide the device count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from landmark_ssl import augment
from landmark_ssl import configs
from landmark_ssl import geometry
from landmark_ssl import losses

Array = jax.Array

VALID_COSTS = configs.VALID_COSTS
ELT_ON = ("unlabeled", "all")
parse_costs = configs.cost_terms  # ``'L+T+C'`` -> ``{'L', 'T', 'C'}``


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """The (hashable, static) cost settings of a run, read from its config.

  Attributes:
    terms: the cost terms that are on, a subset of ``{'L', 'C', 'T'}``.
    landmark_weight: weight of the landmark term.
    landmark_mean: ``'labeled'`` or ``'all'`` (``losses.landmark_loss``'s
      ``mean_over``).
    alpha: weight of the class NLL.
    gamma: weight of the ELT cost.
    weight_decay: ``lambda``, weight of ``sum ||W||^2`` over kernels.
    elt_on: ``'unlabeled'`` or ``'all'``.
    elt_stop_gradient: ``'none'``, ``'original'`` or ``'warped'``
      (``losses.equivariance_loss``).
    elt: ``config.loss.elt`` ranges (``rotation`` degrees, ``scale``,
      ``translation``), as for ``geometry.random_affine``.
    augment: ``config.augment``, passed to ``augment.augment``.
    class_heads: the heads whose NLL is summed.
    landmark_cost: ``'coordinates'`` or ``'heatmap'`` (from the model).
  """
  terms: frozenset
  landmark_weight: float
  landmark_mean: str
  alpha: float
  gamma: float
  weight_decay: float
  elt_on: str
  elt_stop_gradient: str
  elt: ml_collections.FrozenConfigDict
  augment: ml_collections.FrozenConfigDict
  class_heads: tuple
  landmark_cost: str

  @classmethod
  def from_config(cls, config, landmark_cost: str) -> "StepSettings":
    terms = parse_costs(config.costs)
    if config.loss.elt_on not in ELT_ON:
      raise ValueError(f"config.loss.elt_on={config.loss.elt_on!r}; use one of "
                       f"{list(ELT_ON)}.")
    # Optional (as optim.schedule): hand-built configs may leave them out.
    stop = config.loss.get("elt_stop_gradient", "none")
    landmark_mean = config.loss.get("landmark_mean", "labeled")
    if landmark_mean not in losses.LANDMARK_MEAN:
      raise ValueError(f"config.loss.landmark_mean={landmark_mean!r}; use one "
                       f"of {list(losses.LANDMARK_MEAN)}.")
    if stop not in losses.ELT_STOP_GRADIENT:
      raise ValueError(f"config.loss.elt_stop_gradient={stop!r}; use one of "
                       f"{list(losses.ELT_STOP_GRADIENT)}.")
    if "T" in terms and landmark_cost != "coordinates":
      raise ValueError(
          f"config.costs={config.costs!r} uses ELT, which needs differentiable "
          f"landmark coordinates, but model {config.model.name!r} reads its "
          "landmarks with an argmax (landmark_cost='heatmap'); drop T or use a "
          "soft-argmax model (seq_mt, rcn with soft_argmax=True).")
    heads = tuple(config.data.class_heads) if "C" in terms else ()
    if "C" in terms and not heads:
      raise ValueError(f"config.costs={config.costs!r} has a class term but "
                       "config.data.class_heads is empty.")
    return cls(terms=terms,
               landmark_weight=float(config.loss.get("landmark_weight", 1.0)),
               landmark_mean=landmark_mean,
               alpha=float(config.loss.alpha),
               gamma=float(config.loss.gamma),
               weight_decay=float(config.loss.weight_decay),
               elt_on=config.loss.elt_on,
               elt_stop_gradient=stop,
               elt=ml_collections.FrozenConfigDict(config.loss.elt),
               augment=ml_collections.FrozenConfigDict(config.augment),
               class_heads=heads, landmark_cost=landmark_cost)


class TrainState(train_state.TrainState):
  """flax ``TrainState`` plus the static cost settings of the run."""
  settings: StepSettings = flax.struct.field(pytree_node=False, default=None)


def _split_pairs(out: Any, n: int) -> tuple[Any, Any]:
  """Undoes the interleaving of originals and warped images of a model output."""
  pairs = jax.tree.map(lambda x: x.reshape((n, 2) + x.shape[1:]), out)
  return (jax.tree.map(lambda x: x[:, 0], pairs),
          jax.tree.map(lambda x: x[:, 1], pairs))


def compute_costs(params, state: TrainState, batch: Mapping[str, Any],
                  elt_affine: Array | None, dropout_rng: Array):
  """The total cost and its terms (see the module docstring).

  Args:
    params: the parameters to differentiate.
    state: gives ``apply_fn`` and ``settings``.
    batch: an (augmented) batch.
    elt_affine: ``(B, 2, 3)`` ELT transforms when ``'T'`` is on, else None.
    dropout_rng: key of the dropout masks.

  Returns:
    ``(total, metrics)``: ``metrics`` has ``loss`` (the total) and each term
    that is on, unweighted: ``landmark``, ``class`` (sum over heads) and
    ``class/<head>``, ``elt``; ``weight_decay`` is ``sum ||W||^2``.
  """
  s = state.settings
  images = batch["image"]
  n = images.shape[0]
  mask = batch["mask"].astype(jnp.float32)
  if elt_affine is not None:
    warped = geometry.warp_affine(images, elt_affine)
    inputs = jnp.stack([images, warped], axis=1).reshape((2 * n,) + images.shape[1:])
  else:
    inputs = images
  out = state.apply_fn({"params": params}, inputs, train=True,
                       rngs={"dropout": dropout_rng})
  if elt_affine is not None:
    out, out_warped = _split_pairs(out, n)

  metrics = {}
  total = jnp.zeros((), jnp.float32)
  if "L" in s.terms:
    has = batch["has_landmarks"].astype(jnp.float32) * mask
    if s.landmark_cost == "heatmap":
      cost = losses.heatmap_landmark_loss(out["maps"], batch["landmarks"],
                                          batch["visible"], has, mask,
                                          s.landmark_mean)
    else:
      cost = losses.landmark_loss(out["landmarks"], batch["landmarks"],
                                  batch["visible"], has, mask,
                                  s.landmark_mean)
    metrics["landmark"] = cost
    total = total + s.landmark_weight * cost
  if "C" in s.terms:
    class_total = jnp.zeros((), jnp.float32)
    for head in s.class_heads:
      nll = losses.classification_loss(out["logits"][head],
                                       batch["labels"][head], mask)
      metrics[f"class/{head}"] = nll
      class_total = class_total + nll
    metrics["class"] = class_total
    total = total + s.alpha * class_total
  if "T" in s.terms:
    elt_mask = mask if s.elt_on == "all" else (
        mask * (1.0 - batch["has_landmarks"].astype(jnp.float32)))
    cost = losses.equivariance_loss(out["landmarks"], out_warped["landmarks"],
                                    elt_affine, elt_mask,
                                    stop_gradient=s.elt_stop_gradient)
    metrics["elt"] = cost
    total = total + s.gamma * cost
  wd = losses.weight_decay(params)
  metrics["weight_decay"] = wd
  total = total + s.weight_decay * wd
  metrics["loss"] = total
  return total, metrics


def train_step(state: TrainState, batch: Mapping[str, Any], rng: Array):
  """One optimisation step.

  Args:
    state: the current :class:`TrainState`.
    batch: the global training batch (see the module docstring).
    rng: a key for this step only (e.g. ``fold_in(key(seed), step)``); it
      keys the augmentation, the ELT transforms and the dropout masks.

  Returns:
    ``(new_state, metrics)``; ``metrics`` as :func:`compute_costs`, plus
    ``grad_norm`` (global norm of the gradients).
  """
  s = state.settings
  aug_rng, elt_rng, dropout_rng = jax.random.split(rng, 3)
  batch = augment.augment(aug_rng, batch, s.augment)
  elt_affine = None
  if "T" in s.terms:
    images = batch["image"]
    elt_affine = geometry.random_affine(elt_rng, images.shape[0], dict(s.elt),
                                        images.shape[1:3])
  grad_fn = jax.value_and_grad(compute_costs, has_aux=True)
  (_, metrics), grads = grad_fn(state.params, state, batch, elt_affine,
                                dropout_rng)
  metrics["grad_norm"] = optax.tree.norm(grads)
  return state.apply_gradients(grads=grads), metrics


def eval_step(state: TrainState, batch: Mapping[str, Any]):
  """Predictions of the model (no dropout, no augmentation).

  Returns:
    ``{'landmarks': (B, K, 2), 'logits': {head: (B, classes)}}``.
  """
  out = state.apply_fn({"params": state.params}, batch["image"], train=False)
  return {"landmarks": out["landmarks"], "logits": out["logits"]}


def train_steps(states: TrainState, batches: Mapping[str, Any], rngs: Array,
                active: Array):
  """``S`` independent :func:`train_step` s, one per run (``jax.vmap``).

  Args:
    states: a :class:`TrainState` whose arrays have a leading run axis ``S``
      (all runs share ``apply_fn``, ``tx`` and ``settings``).
    batches: batch dict with a leading run axis: ``image (S, B, H, W, C)``...
    rngs: ``(S,)`` keys, run ``i``'s key for this step.
    active: ``(S,)`` bool; a run that is not active keeps its state exactly
      (its update is computed and discarded), e.g. after early stopping.

  Returns:
    ``(new_states, metrics)``; each metric has shape ``(S,)`` (those of
    inactive runs are meaningless).
  """
  new_states, metrics = jax.vmap(train_step)(states, batches, rngs)
  def keep(new, old):
    where = jnp.reshape(active, active.shape + (1,) * (new.ndim - 1))
    return jnp.where(where, new, old)
  return jax.tree.map(keep, new_states, states), metrics


def eval_steps(states: TrainState, batch: Mapping[str, Any]):
  """:func:`eval_step` of ``S`` runs (leading run axis of ``states``) on one
  shared ``batch``; predictions have a leading run axis ``S``."""
  return jax.vmap(eval_step, in_axes=(0, None))(states, batch)


# --------------------------------------------------------------------------
# the mesh


def make_mesh(devices=None) -> Mesh:
  """A 1-D ``('data',)`` mesh over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def runs_data_sharded(mesh: Mesh) -> NamedSharding:
  """Arrays with a leading run axis (replicated) and a batch axis on ``'data'``."""
  return NamedSharding(mesh, P(None, "data"))


def check_batch_size(batch_size: int, mesh: Mesh, what: str) -> None:
  """Raises a clear error if ``batch_size`` does not split over the mesh."""
  d = mesh.devices.size
  if batch_size % d:
    raise ValueError(f"{what}={batch_size} is not divisible by the {d} devices "
                     f"of the mesh; use a multiple of {d}.")


def global_batch(local_batch: Mapping[str, Any], mesh: Mesh,
                 run_axis: bool = False):
  """Process-local numpy batch -> global ``jax.Array``s sharded on ``'data'``.

  With one process this is a device put; with several, each process passes
  its own rows and the global batch is their concatenation in process order.
  With ``run_axis``, every array has a leading run axis ``(S, local B, ...)``
  and the batch axis is the second (``runs_data_sharded``).
  """
  sharding = runs_data_sharded(mesh) if run_axis else data_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      dict(local_batch))


def jit_train_step(mesh: Mesh):
  """``train_step`` compiled for ``mesh``: ``(state, batch, rng) -> (state, metrics)``.

  The state is donated: do not use the ``state`` passed in after the call.
  """
  rep, dat = replicated(mesh), data_sharded(mesh)
  return jax.jit(train_step, in_shardings=(rep, dat, rep),
                 out_shardings=(rep, rep), donate_argnums=(0,))


def jit_eval_step(mesh: Mesh):
  """``eval_step`` compiled for ``mesh``; predictions stay sharded on ``'data'``."""
  rep, dat = replicated(mesh), data_sharded(mesh)
  return jax.jit(eval_step, in_shardings=(rep, dat), out_shardings=dat)


def jit_train_steps(mesh: Mesh):
  """``train_steps`` compiled for ``mesh``: ``(states, batches, rngs, active)
  -> (states, metrics)``; states replicated, batches ``P(None, 'data')``.

  The states are donated: do not use the ``states`` passed in after the call.
  """
  rep, runs = replicated(mesh), runs_data_sharded(mesh)
  return jax.jit(train_steps, in_shardings=(rep, runs, rep, rep),
                 out_shardings=(rep, rep), donate_argnums=(0,))


def jit_stack_runs(mesh: Mesh):
  """``[tree_0, ..., tree_{S-1}] -> tree`` with a leading run axis, replicated
  on ``mesh`` (e.g. ``S`` single-run states of the same shapes)."""
  stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
  return jax.jit(stack, out_shardings=replicated(mesh))


def jit_take_run(mesh: Mesh):
  """``(tree, i) -> tree[i]``: run ``i`` of a run-stacked tree (e.g. its
  single-run state, to checkpoint), replicated on ``mesh``."""
  take = lambda tree, i: jax.tree.map(lambda x: x[i], tree)
  return jax.jit(take, out_shardings=replicated(mesh))


def jit_eval_steps(mesh: Mesh):
  """``eval_steps`` compiled for ``mesh``; predictions ``P(None, 'data')``."""
  rep, dat = replicated(mesh), data_sharded(mesh)
  return jax.jit(eval_steps, in_shardings=(rep, dat),
                 out_shardings=runs_data_sharded(mesh))
