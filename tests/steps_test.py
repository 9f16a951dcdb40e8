"""Tests of landmark_ssl.steps: the costs, the ELT batching, the mesh."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from landmark_ssl import geometry, losses, models, steps

H = W = 16
K = 3
CLASSES = 4


def _config(costs="L+T+C", elt_on="unlabeled", dropout=0.0):
  c = ml_collections.ConfigDict()
  c.costs = costs
  c.data = ml_collections.ConfigDict(dict(class_heads=("label",)))
  c.model = ml_collections.ConfigDict(dict(
      name="seq_mt", kernel_sizes=(3, 3, 1), features=4,
      classifier_hidden=(8,), dropout=dropout))
  c.loss = ml_collections.ConfigDict(dict(
      alpha=0.7, gamma=0.3, weight_decay=1e-3, elt_on=elt_on,
      elt=dict(rotation=20.0, scale=0.1, translation=0.1)))
  c.augment = ml_collections.ConfigDict(dict(
      rotation=0.0, scale=0.0, translation=0.0))
  return c


def _batch(rng, n=8):
  return {
      "image": rng.uniform(size=(n, H, W, 1)).astype(np.float32),
      "landmarks": rng.uniform(2, 13, size=(n, K, 2)).astype(np.float32),
      "visible": (rng.uniform(size=(n, K)) > 0.2).astype(np.float32),
      "has_landmarks": (np.arange(n) % 2).astype(np.float32),
      "labels": {"label": rng.integers(0, CLASSES, size=n).astype(np.int32)},
      "normalizer": np.ones((n,), np.float32),
      "mask": np.ones((n,), np.float32),
  }


def _state(config, lr=1e-2, seed=0):
  heads = {"label": CLASSES} if "C" in steps.parse_costs(config.costs) else {}
  model = models.create_model(config.model, K, heads)
  params = model.init(jax.random.key(seed), jnp.zeros((1, H, W, 1)))["params"]
  settings = steps.StepSettings.from_config(config, model.landmark_cost)
  return steps.TrainState.create(apply_fn=model.apply, params=params,
                                 tx=optax.adam(lr), settings=settings), model


def test_parse_costs():
  assert steps.parse_costs("L+T+C") == {"L", "T", "C"}
  assert steps.parse_costs("C") == {"C"}
  with pytest.raises(ValueError, match="config.costs='L\\+X'"):
    steps.parse_costs("L+X")


def test_heatmap_model_with_elt_is_refused():
  config = _config("L+T")
  with pytest.raises(ValueError, match="ELT.*heatmap"):
    steps.StepSettings.from_config(config, "heatmap")


@pytest.mark.parametrize("elt_on", ["unlabeled", "all"])
def test_costs_match_separate_forward_passes(
    elt_on, fresh_seed, fresh_key):
  """The interleaved single pass equals two passes and the costs of losses.py."""
  config = _config("L+T+C", elt_on)
  state, model = _state(config, seed=fresh_seed)
  batch = _batch(np.random.default_rng(fresh_seed))
  a = geometry.random_affine(fresh_key(5), 8, dict(config.loss.elt),
                             (H, W))
  total, metrics = steps.compute_costs(state.params, state, batch, a,
                                       fresh_key(1))
  variables = {"params": state.params}
  out = model.apply(variables, batch["image"])
  out_w = model.apply(variables, geometry.warp_affine(batch["image"], a))
  lm = losses.landmark_loss(out["landmarks"], batch["landmarks"],
                            batch["visible"], batch["has_landmarks"])
  nll = losses.classification_loss(out["logits"]["label"], batch["labels"]["label"])
  elt_mask = None if elt_on == "all" else 1.0 - batch["has_landmarks"]
  elt = losses.equivariance_loss(out["landmarks"], out_w["landmarks"], a, elt_mask)
  wd = losses.weight_decay(state.params)
  np.testing.assert_allclose(metrics["landmark"], lm, rtol=1e-5)
  np.testing.assert_allclose(metrics["class/label"], nll, rtol=1e-5)
  np.testing.assert_allclose(metrics["elt"], elt, rtol=1e-5)
  np.testing.assert_allclose(
      total, lm + 0.7 * nll + 0.3 * elt + 1e-3 * wd, rtol=1e-5)
  assert float(elt) > 0


def test_elt_stop_gradient_drops_one_branch_of_the_gradient(
    fresh_seed, fresh_key):
  """Gradients are linear in the cost: with both branches live, the ELT
  gradient is the sum of the two one-branch ones, so
  grad(none) + grad(gamma = 0) == grad(original) + grad(warped), and the
  cost's value does not depend on the mode."""
  batch = _batch(np.random.default_rng(fresh_seed))
  grads, values = {}, {}
  for stop, gamma in [("none", 0.3), ("original", 0.3), ("warped", 0.3),
                      ("none", 0.0)]:
    config = _config("L+T")
    config.loss.gamma = gamma
    config.loss.elt_stop_gradient = stop
    state, _ = _state(config, seed=fresh_seed)  # the same each time
    a = geometry.random_affine(fresh_key(5), 8, dict(config.loss.elt),
                               (H, W))
    (values[stop, gamma], _), grads[stop, gamma] = jax.value_and_grad(
        steps.compute_costs, has_aux=True)(state.params, state, batch, a,
                                           fresh_key(1))
  np.testing.assert_allclose(values["original", 0.3], values["none", 0.3], rtol=1e-6)
  np.testing.assert_allclose(values["warped", 0.3], values["none", 0.3], rtol=1e-6)
  flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
  lhs = flat(grads["none", 0.3]) + flat(grads["none", 0.0])
  rhs = flat(grads["original", 0.3]) + flat(grads["warped", 0.3])
  np.testing.assert_allclose(lhs, rhs, atol=1e-5 * np.abs(lhs).max())
  # Each mode really changes the gradient.
  for stop in ("original", "warped"):
    diff = np.abs(flat(grads[stop, 0.3]) - flat(grads["none", 0.3])).max()
    assert diff > 1e-3 * np.abs(flat(grads["none", 0.3])).max()
  config = _config("L+T")
  config.loss.elt_stop_gradient = "target"
  with pytest.raises(ValueError, match="elt_stop_gradient='target'.*original"):
    steps.StepSettings.from_config(config, "coordinates")


def test_terms_follow_costs(fresh_seed, fresh_key):
  batch = _batch(np.random.default_rng(fresh_seed))
  for costs, expected in [("L", {"landmark"}), ("C", {"class", "class/label"}),
                          ("L+T", {"landmark", "elt"})]:
    state, _ = _state(_config(costs), seed=fresh_seed)
    new_state, metrics = jax.jit(steps.train_step)(state, batch,
                                                   fresh_key(0))
    assert set(metrics) == expected | {"loss", "weight_decay", "grad_norm"}
    assert int(new_state.step) == 1


def test_train_step_learns_a_fixed_batch(fresh_seed, fresh_key):
  state, _ = _state(_config("L+C"), lr=3e-2, seed=fresh_seed)
  batch = _batch(np.random.default_rng(fresh_seed))
  step = jax.jit(steps.train_step)
  first = None
  # 80 steps: at 25, about 1% of seeds were still above 0.7 of the start.
  for i in range(80):
    state, metrics = step(state, batch, fresh_key(i))
    first = float(metrics["loss"]) if first is None else first
  assert float(metrics["loss"]) < 0.7 * first


def test_eight_and_one_device_meshes_agree(fresh_seed, fresh_key):
  """Same losses and predictions on a ('data',) mesh of 8 devices and of 1."""
  assert jax.device_count() == 8, "conftest.py should simulate 8 CPU devices"
  config = _config("L+T+C", dropout=0.25)
  rng = np.random.default_rng(fresh_seed)
  batches = [_batch(rng, 16) for _ in range(3)]
  results = []
  for devices in (jax.devices(), jax.devices()[:1]):
    mesh = steps.make_mesh(devices)
    state, _ = _state(config, seed=fresh_seed)  # the same on both meshes
    state = jax.device_put(state, steps.replicated(mesh))
    step = steps.jit_train_step(mesh)
    losses_seen = []
    for i, b in enumerate(batches):
      state, metrics = step(state, steps.global_batch(b, mesh),
                            fresh_key(i))
      losses_seen.append({k: float(v) for k, v in metrics.items()})
      assert len(state.params["landmark_net"]["conv0"]["kernel"].sharding
                 .device_set) == len(devices)
    preds = steps.jit_eval_step(mesh)(state, steps.global_batch(batches[0], mesh))
    results.append((losses_seen, jax.device_get(state.params),
                    np.asarray(preds["landmarks"])))
  # Parameters are not compared leaf by leaf: the soft-argmax is invariant to
  # the bias of the last conv, whose gradient is zero up to rounding, and Adam
  # normalises that rounding noise into full-size steps. The losses and the
  # predictions, which do not see that bias, must agree.
  (l8, p8, e8), (l1, p1, e1) = results
  for a, b in zip(l8, l1):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=1e-6, err_msg=k)
  np.testing.assert_allclose(e8, e1, rtol=1e-4, atol=1e-4)


def test_batch_size_must_split_over_devices():
  mesh = steps.make_mesh()
  with pytest.raises(ValueError, match="config.data.batch_size=12.*multiple of 8"):
    steps.check_batch_size(12, mesh, "config.data.batch_size")


def test_train_steps_are_independent_runs_and_mask_inactive_ones(
    fresh_seed, fresh_key):
  """vmap over 3 runs = 3 plain train_steps on the same 8-device mesh (to
  float rounding: vmap batches the convolutions differently); an inactive
  run's state comes back bit-identical."""
  config = _config("L+T+C", dropout=0.25)
  state, model = _state(config, seed=fresh_seed)
  params = [model.init(fresh_key(10 + i), jnp.zeros((1, H, W, 1)))
            ["params"] for i in range(3)]
  states = [state.replace(params=p, opt_state=state.tx.init(p)) for p in params]
  rng = np.random.default_rng(fresh_seed)
  batches = [_batch(rng, 16) for _ in range(3)]
  keys = [fresh_key(20 + i) for i in range(3)]
  mesh = steps.make_mesh()
  stack, take = steps.jit_stack_runs(mesh), steps.jit_take_run(mesh)
  batch = steps.global_batch(jax.tree.map(lambda *x: np.stack(x), *batches),
                             mesh, run_axis=True)
  new, metrics = steps.jit_train_steps(mesh)(
      stack(states), batch, stack(keys), np.array([True, False, True]))
  single, evaluate = steps.jit_train_step(mesh), steps.jit_eval_step(mesh)
  probe = steps.global_batch(_batch(rng, 16), mesh)
  for i in (0, 2):
    alone, m = single(jax.device_put(states[i], steps.replicated(mesh)),
                      steps.global_batch(batches[i], mesh), keys[i])
    for k in m:
      np.testing.assert_allclose(metrics[k][i], m[k], rtol=2e-5, err_msg=k)
    run = take(new, i)
    assert int(run.step) == 1
    # Predictions, not parameters (see test_eight_and_one_device_meshes_agree).
    np.testing.assert_allclose(evaluate(run, probe)["landmarks"],
                               evaluate(alone, probe)["landmarks"],
                               rtol=1e-4, atol=1e-4)
  still = take(new, 1)
  assert int(still.step) == 0
  for a, b in zip(jax.tree.leaves(still), jax.tree.leaves(states[1])):
    np.testing.assert_array_equal(a, b)
  # eval_steps: each run's predictions on one shared batch.
  preds = steps.jit_eval_steps(mesh)(new, probe)
  assert preds["landmarks"].shape == (3, 16, K, 2)
  for i in range(3):
    np.testing.assert_allclose(preds["landmarks"][i],
                               evaluate(take(new, i), probe)["landmarks"],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_landmark_cost_needs_only_the_labelled_rows(
    dropout, fresh_seed, fresh_key):
  """Costs L: the labelled rows alone (any order, plus masked padding) give
  the cost and gradients of the whole batch (what TrainLoader's
  ``labeled_only`` relies on)."""
  config = _config("L", dropout=dropout)
  state, _ = _state(config, seed=fresh_seed)
  rng = np.random.default_rng(fresh_seed)
  batch = _batch(rng, n=16)
  batch["has_landmarks"] = (rng.uniform(size=16) < 0.3).astype(np.float32)
  # One labelled row with every landmark visible: the row changed at the end
  # (a row with none visible would rightly leave the cost as it is).
  row = rng.integers(16)
  batch["has_landmarks"][row] = 1.0
  batch["visible"][row] = 1.0
  lab = np.flatnonzero(batch["has_landmarks"])
  rows = np.concatenate([rng.permutation(lab), lab[:1], lab[:1]])  # 2 pads
  small = {k: v[rows] for k, v in batch.items() if k != "labels"}
  small["labels"] = {k: v[rows] for k, v in batch["labels"].items()}
  small["mask"] = (np.arange(len(rows)) < len(lab)).astype(np.float32)
  grad = jax.grad(steps.compute_costs, has_aux=True)
  (g_full, m_full), (g_small, m_small) = [
      (grad(state.params, state, b, None, fresh_key(3)))
      for b in (batch, small)]
  np.testing.assert_allclose(m_small["landmark"], m_full["landmark"], rtol=1e-5)
  assert m_full["landmark"] > 0
  # float32 sums in another order: the tolerance is relative to the scale of
  # the whole gradient, not each leaf's. The last conv's bias has a zero
  # gradient in exact arithmetic (the soft-argmax ignores a constant added to
  # a map), so its float32 value is pure rounding noise (~1e-6 of the largest
  # gradient) and differs between the two row orders by as much.
  scale = max(float(np.abs(a).max()) for a in jax.tree.leaves(g_full))
  for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_small)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)
  # The unlabelled rows really are ignored: changing them changes nothing,
  # while changing a labelled row does.
  other = dict(batch, image=np.where(batch["has_landmarks"][:, None, None, None]
                                     > 0, batch["image"], rng.uniform(
                                         size=batch["image"].shape)).astype(np.float32))
  _, m_other = grad(state.params, state, other, None, fresh_key(3))
  np.testing.assert_allclose(m_other["landmark"], m_full["landmark"], rtol=1e-6)
  changed = dict(batch, image=batch["image"].copy())
  changed["image"][row] = rng.uniform(size=changed["image"].shape[1:])
  _, m_changed = grad(state.params, state, changed, None, fresh_key(3))
  assert abs(float(m_changed["landmark"]) - float(m_full["landmark"])) > 1e-6


def test_landmark_weight_scales_only_the_landmark_term(
    fresh_seed, fresh_key):
  """The total and its gradient are linear in the landmark weight, with
  slope the landmark cost and its gradient; 'all' averaging scales the term by the
  labelled share of the batch."""
  rng = np.random.default_rng(fresh_seed)
  batch = _batch(rng)
  a = geometry.random_affine(fresh_key(5), 8,
                             dict(rotation=20.0, scale=0.1, translation=0.1),
                             (H, W))
  weight = float(rng.uniform(0.001, 3.0))

  def grads(landmark_weight, costs="L+T+C", mean="labeled"):
    config = _config(costs)
    config.loss.landmark_weight = landmark_weight
    config.loss.landmark_mean = mean
    state, _ = _state(config, seed=fresh_seed)
    g, metrics = jax.grad(steps.compute_costs, has_aux=True)(
        state.params, state, batch, a if "T" in costs else None,
        fresh_key(1))
    return g, metrics

  g_w, m_w = grads(weight)
  g_0, m_0 = grads(0.0)
  g_1, _ = grads(1.0)
  # The total moves by exactly w times the (unweighted) landmark cost ...
  np.testing.assert_allclose(m_w["loss"] - m_0["loss"],
                             weight * m_w["landmark"], rtol=1e-4)
  # ... and so does its gradient: g(w) - g(0) == w * (g(1) - g(0)).
  # (Leaves the landmarks cannot move, e.g. the maps' biases under the
  # shift-invariant soft-argmax, hold rounding noise: tolerance by the
  # largest gradient.)
  scale = max(float(np.abs(x).max()) for x in jax.tree.leaves(g_w))
  for x, y, z in zip(jax.tree.leaves(g_w), jax.tree.leaves(g_0),
                     jax.tree.leaves(g_1)):
    np.testing.assert_allclose(x - y, weight * (z - y), rtol=2e-3,
                               atol=1e-4 * scale)
  _, m_all = grads(weight, mean="all")
  # The 'labeled' mean counts the labelled images with a visible landmark
  # (losses.landmark_loss); with K = 3 points visible at 80%, a random
  # batch lacks one about once in 30.
  used = batch["has_landmarks"] * batch["mask"] * (batch["visible"].sum(1) > 0)
  share = float(np.sum(used) / np.sum(batch["mask"]))
  np.testing.assert_allclose(m_all["landmark"], share * m_w["landmark"],
                             rtol=1e-5)


def test_bad_landmark_mean_names_the_key():
  config = _config()
  config.loss.landmark_mean = "every"
  with pytest.raises(ValueError, match="config.loss.landmark_mean='every'"):
    steps.StepSettings.from_config(config, "coordinates")
