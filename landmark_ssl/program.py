"""The compiled program of a run: its optimizer, its initial state, and the
jitted train and eval steps of one run or of ``S`` runs trained together.

``train`` drives a :class:`Program` step by step; ``evaluator`` uses its
forward pass. With one run it is exactly ``steps.jit_train_step`` /
``jit_eval_step`` on the plain state; with ``S > 1`` runs, the same pure
steps under ``jax.vmap`` (``steps.jit_train_steps`` / ``jit_eval_steps``) on
the runs' states stacked along a leading run axis (run ``i`` is slot ``i``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from landmark_ssl import steps


def _learning_rate(optim_config, total_steps: int):
  """The config's learning rate: a float, or an optax schedule of the step."""
  lr = float(optim_config.learning_rate)
  schedule = optim_config.get("schedule", "constant")
  if schedule == "constant":
    return lr
  if schedule == "cosine":
    return optax.cosine_decay_schedule(lr, max(int(total_steps), 1))
  raise ValueError(f"config.optim.schedule={schedule!r}; use 'constant' or "
                   "'cosine'.")


def make_optimizer(optim_config, total_steps: int) -> optax.GradientTransformation:
  """Adam with the learning rate (and optional schedule, clipping) of the config."""
  tx = optax.adam(_learning_rate(optim_config, total_steps))
  clip = float(optim_config.get("grad_clip_norm", 0.0))
  if clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  return tx


def learning_rate(optim_config, total_steps: int, step: int) -> float:
  """The learning rate of :func:`make_optimizer`'s Adam at ``step``."""
  lr = _learning_rate(optim_config, total_steps)
  return float(lr(step)) if callable(lr) else lr


def model_heads(config, info) -> dict:
  """``{head: num_classes}`` of the classifier branches (empty without C)."""
  if "C" not in steps.parse_costs(config.costs):
    return {}
  heads = {}
  for head in config.data.class_heads:
    if head not in info.classes:
      raise ValueError(
          f"config.data.class_heads names {head!r}, but dataset "
          f"{info.name!r} has the class features {sorted(info.classes)}.")
    heads[head] = int(info.classes[head])
  return heads


def state_initializer(model, tx, settings, image_shape, mesh):
  """``rng ->`` a fresh, replicated :class:`steps.TrainState` (compiled
  once; call it with each run's key)."""
  def init(rng):
    dummy = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    params = model.init({"params": rng}, dummy, train=False)["params"]
    return steps.TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                   settings=settings)
  return jax.jit(init, out_shardings=steps.replicated(mesh))


def create_train_state(model, tx, settings, image_shape, rng, mesh):
  """A fresh, replicated :class:`steps.TrainState`."""
  return state_initializer(model, tx, settings, image_shape, mesh)(rng)


class Program:
  """The compiled steps of the runs trained (or evaluated) together.

  Args:
    mesh: the ``('data',)`` mesh.
    train_keys: each run's training key (step ``t`` uses ``fold_in(key,
      t)``); one run per key.
  """

  def __init__(self, mesh, train_keys: list):
    self.mesh = mesh
    self.num_runs = len(train_keys)
    self.vectorized = self.num_runs > 1
    if self.vectorized:
      self._train = steps.jit_train_steps(mesh)
      self.eval_fn = steps.jit_eval_steps(mesh)
      self._stack = steps.jit_stack_runs(mesh)
      self._take = steps.jit_take_run(mesh)
      self._keys = self._stack(list(train_keys))
      self._fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)),
                           out_shardings=steps.replicated(mesh))
    else:
      self._train = steps.jit_train_step(mesh)
      self.eval_fn = steps.jit_eval_step(mesh)
      self._key = train_keys[0]

  @classmethod
  def for_evaluation(cls, mesh) -> "Program":
    """The program of one run that is only evaluated."""
    return cls(mesh, [None])

  def stack(self, states: list):
    """The program's state of the runs' single-run ``states``."""
    return self._stack(list(states)) if self.vectorized else states[0]

  def take(self, state, slot: int):
    """Run ``slot``'s single-run state (a copy when vectorised)."""
    return self._take(state, slot) if self.vectorized else state

  def train(self, state, local_batches: list, step: int, active: list):
    """One step of the active runs: ``(state, metrics)``.

    ``local_batches[i]`` is run ``i``'s process-local batch of ``step``, or
    ``None`` if run ``i`` is not active (its slot then computes on another
    run's batch and its update is discarded).
    """
    if not self.vectorized:
      batch = steps.global_batch(local_batches[0], self.mesh)
      return self._train(state, batch, jax.random.fold_in(self._key, step))
    filler = next(b for b in local_batches if b is not None)
    local = [filler if b is None else b for b in local_batches]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *local)
    batch = steps.global_batch(stacked, self.mesh, run_axis=True)
    return self._train(state, batch, self._fold(self._keys, step),
                       np.asarray(active, bool))

  def metrics_of(self, host_metrics: dict, slot: int) -> dict:
    """Run ``slot``'s values of host (``device_get``) step metrics."""
    if not self.vectorized:
      return host_metrics
    return {k: v[slot] for k, v in host_metrics.items()}
