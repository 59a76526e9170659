"""The method zoo: every method trains without collapse, and its state is exact.

Compiles dominate on CPU, so every training run uses one tiny backbone (one residual stage
of width 8, 4 frames of 16x16) and few distinct shapes; the EMA check reuses the BYOL
training step the parametrized run compiled (same config, so the persistent cache hits).
Everything else is checked against numpy with small jitted functions (eager JAX would
compile every primitive separately).
"""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_pretrain_config
from ssvbench import config as config_lib
from ssvbench import recipes, runs
from ssvbench.methods import base, common, losses, moco, registry, video_options
from ssvbench.models.registry import build_backbone
from ssvbench.train import sharding, trainer

TINY_BACKBONE = dict(blocks=(1,), widths=(8,), conv_impl="native")
# Each method also exercises some video options, so every option trains somewhere.
METHOD_VARIANTS = {
    "moco_v2": {},
    "moco_v3": {"video": dict(intra_negatives=("shuffle", "repeat"),
                              frame_difference="alternate")},
    "byol": {"num_views": 3, "video": dict(background_erasing_prob=0.5)},
    "simsiam": {},
    "swav": {"queue_size": 16, "freeze_prototypes_steps": 1},
    "barlow_twins": {"video": dict(frame_difference="all")},
    "vicreg": {},
    "supcon": {},
}
# Fraction of 1/sqrt(d) (the std of uniformly spread unit embeddings) below which a
# method counts as collapsed; a collapsed embedding has std 0.
COLLAPSE_FRACTION = 0.25


def zoo_config(store_dir, method, **train):
  config = tiny_pretrain_config(store_dir, method,
                                **dict(dict(num_steps=4, log_every=1, checkpoint_every=2), **train))
  config.model.overrides = dict(TINY_BACKBONE)
  config.data.update(dict(num_frames=4, crop_size=16))
  config.method.update(METHOD_VARIANTS.get(method, {}))
  return config


def _metrics(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {record["step"]: record for record in map(json.loads, lines)}


def _all_leaves(workdir):
  _, model, step = runs.load_trained_model(workdir)
  return step, {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in
                jax.tree_util.tree_leaves_with_path(nnx.state(model))}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHOD_VARIANTS))
def test_method_trains_without_collapse(tiny_store, tmp_path, method):
  config = zoo_config(tiny_store, method, checkpoint_every=4)
  trainer.train(config, tmp_path / method, progress=False)
  metrics = _metrics(tmp_path / method)
  assert sorted(metrics) == [1, 2, 3, 4]
  assert all(np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"]) for m in metrics.values())
  embedding_dim = config.method.proj_dim
  assert metrics[4]["embedding_std"] > COLLAPSE_FRACTION / np.sqrt(embedding_dim), metrics[4]
  if method == "swav":
    # 8 videos per step fill the 16-entry queue after 2 steps; it is used from step 3.
    assert [metrics[s]["queue_in_use"] for s in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.slow
def test_moco_v2_resumes_exactly_with_queue_and_ema(tiny_store, tmp_path):
  config = zoo_config(tiny_store, "moco_v2")
  trainer.train(config, tmp_path / "straight", progress=False)
  original_save = trainer.checkpoint_lib.Checkpointer.save

  class Crash(Exception):
    pass

  def save_then_crash(self, step, state, data_iterator=None):
    original_save(self, step, state, data_iterator)
    if step == 2:
      raise Crash()

  trainer.checkpoint_lib.Checkpointer.save = save_then_crash
  try:
    with pytest.raises(Crash):
      trainer.train(config, tmp_path / "resumed", progress=False)
  finally:
    trainer.checkpoint_lib.Checkpointer.save = original_save
  trainer.train(config, tmp_path / "resumed", resume=True, progress=False)
  straight, resumed = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
  for step in (3, 4):
    assert resumed[step]["loss"] == straight[step]["loss"]
  step_a, leaves_a = _all_leaves(tmp_path / "straight")
  step_b, leaves_b = _all_leaves(tmp_path / "resumed")
  assert step_a == step_b == 4 and leaves_a.keys() == leaves_b.keys()
  assert any("queue" in key for key in leaves_a) and any("target" in key for key in leaves_a)
  for key in leaves_a:
    np.testing.assert_array_equal(leaves_a[key], leaves_b[key], err_msg=key)


def _tiny_state(store_dir, method, mesh):
  """The train state trainer.train would start from (same jit, so a cache hit)."""
  config = zoo_config(store_dir, method)
  optimizer = trainer.make_optimizer(config.optim, config.train.num_steps)
  method_object, graphdef, state = trainer.create_train_state(config, 4, optimizer, mesh)
  return config, method_object, graphdef, state, optimizer


def _random_batch(config, method_object, seed=0):
  shape = (config.train.batch_size, method_object.num_views, config.data.num_frames,
           config.data.crop_size, config.data.crop_size, 3)
  rng = np.random.default_rng(seed)
  return {"clips": rng.integers(0, 256, shape, dtype=np.uint8),
          "label": (np.arange(shape[0]) % 4).astype(np.int32)}


@pytest.mark.slow
def test_moco_v2_loss_and_queue_do_not_depend_on_device_count(tiny_store):
  config, method, graphdef, state, _ = _tiny_state(tiny_store, "moco_v2", sharding.make_mesh())
  params, rest = jax.device_get((state["params"], state["rest"]))
  batch = _random_batch(config, method)

  def loss_and_rest(params, rest, batch):
    merged = nnx.merge(graphdef, params, rest, copy=True)
    loss, _ = method.loss(merged, batch, jax.random.PRNGKey(3))
    return loss, trainer.split_model(merged)[2]

  results = {}
  for devices in (1, 8):
    mesh = sharding.make_mesh({"data": devices})
    replicated = sharding.replicated(mesh)
    step = jax.jit(loss_and_rest, out_shardings=replicated,
                   in_shardings=(replicated, replicated, sharding.batch_sharding(mesh)))
    results[devices] = step(params, rest, sharding.global_batch(batch, mesh))
  (loss_1, rest_1), (loss_8, rest_8) = results[1], results[8]
  np.testing.assert_allclose(loss_8, loss_1, rtol=1e-5)
  queue_before = np.asarray(rest["queue"].get_value())
  queue_1, queue_8 = (np.asarray(r["queue"].get_value()) for r in (rest_1, rest_8))
  # Keys pass BN and normalisation: reduction order differs across devices (~1e-5).
  np.testing.assert_allclose(queue_8, queue_1, rtol=1e-4, atol=5e-5)
  # FIFO: the 16 new keys (8 videos x 2 views, unit norm) in front, the rest shifted back.
  new = 8 * method.num_views
  np.testing.assert_array_equal(queue_1[new:], queue_before[:-new])
  np.testing.assert_allclose(np.linalg.norm(queue_1[:new], axis=-1), 1.0, rtol=1e-5)
  assert not np.allclose(queue_1[:new], queue_before[:new])


def test_byol_target_moves_by_the_ema_formula_only(tiny_store):
  mesh = sharding.make_mesh(zoo_config(tiny_store, "byol").mesh)
  config, method, graphdef, state, optimizer = _tiny_state(tiny_store, "byol", mesh)
  # Gradients cannot reach the target: none of its weights is a trainable Param.
  assert "target" not in state["params"]
  target_types = {type(v) for v in jax.tree.leaves(state["rest"]["target"],
                                                   is_leaf=lambda x: isinstance(x, nnx.Variable))}
  assert target_types == {common.EMATarget, nnx.BatchStat}
  train_step = trainer.make_train_step(method, graphdef, optimizer, mesh)
  batches = [sharding.global_batch(_random_batch(config, method, seed), mesh) for seed in (0, 1)]
  # The first step has learning rate 0 (linear warm-up from 0): check the second one.
  state, _ = train_step(state, batches[0])
  before = jax.device_get(state)
  after = jax.device_get(train_step(state, batches[1])[0])
  momentum = float(common.momentum_at(1, config.method.momentum, "cosine", config.train.num_steps))
  assert momentum == pytest.approx(1 - 0.01 * (np.cos(np.pi / 4) + 1) / 2)
  old_target = nnx.to_pure_dict(before["rest"]["target"].filter(common.EMATarget))
  new_target = nnx.to_pure_dict(after["rest"]["target"].filter(common.EMATarget))
  new_online = {name: nnx.to_pure_dict(after["params"][name]) for name in ("backbone", "projector")}
  flat_old, flat_new, flat_online = (jax.tree_util.tree_leaves_with_path(t)
                                     for t in (old_target, new_target, new_online))
  moved = 0
  for (path, old), (_, new), (online_path, online) in zip(flat_old, flat_new, flat_online):
    assert path == online_path
    np.testing.assert_allclose(new, momentum * old + (1 - momentum) * online, rtol=1e-6,
                               atol=1e-7, err_msg=jax.tree_util.keystr(path))
    moved += not np.array_equal(new, old)
  assert moved > 0  # The step changed the online weights, so the target moved.


def test_enqueue_is_fifo_newest_first():
  queue = np.arange(12, dtype=np.float32).reshape(6, 2)
  items = -np.arange(1, 5, dtype=np.float32).reshape(2, 2)
  updated = np.asarray(common.enqueue(jnp.asarray(queue), jnp.asarray(items)))
  np.testing.assert_array_equal(updated, np.concatenate([items, queue[:4]]))
  # Along another axis (SwAV's [views, Q, D] queue), and with more items than slots.
  queue3 = np.zeros((2, 3, 1), np.float32)
  many = np.arange(8, dtype=np.float32).reshape(2, 4, 1)
  np.testing.assert_array_equal(common.enqueue(jnp.asarray(queue3), jnp.asarray(many), axis=1),
                                many[:, :3])


def test_ema_update_moves_only_target_weights():
  rest = nnx.State({
      "target": {"backbone": {"kernel": common.EMATarget(jnp.ones(2)),
                              "mean": nnx.BatchStat(jnp.zeros(2))}},
      "queue": common.Queue(jnp.zeros(3))})
  params = nnx.State({"backbone": {"kernel": nnx.Param(jnp.full(2, 3.0))},
                      "predictor": {"kernel": nnx.Param(jnp.ones(1))}})
  updated = common.ema_update(rest, params, 0.75)
  np.testing.assert_allclose(updated["target"]["backbone"]["kernel"].get_value(), 0.75 + 0.25 * 3)
  np.testing.assert_array_equal(updated["target"]["backbone"]["mean"].get_value(), 0.0)
  np.testing.assert_array_equal(updated["queue"].get_value(), 0.0)
  np.testing.assert_array_equal(rest["target"]["backbone"]["kernel"].get_value(), 1.0)  # Pure.
  with pytest.raises(ValueError, match="no online counterpart"):
    common.ema_update(rest, nnx.State({"predictor": params["predictor"]}), 0.5)


def test_momentum_schedules():
  for step in (0, 3, 10):
    expected = 1 - (1 - 0.99) * (np.cos(np.pi * step / 10) + 1) / 2
    assert float(common.momentum_at(step, 0.99, "cosine", 10)) == pytest.approx(expected, abs=1e-7)
  assert float(common.momentum_at(50, 0.99, "cosine", 10)) == pytest.approx(1.0)
  assert float(common.momentum_at(7, 0.999, "constant", None)) == pytest.approx(0.999)
  method_config = ml_collections.ConfigDict(zoo_config("unused", "byol").method.to_dict())
  method_config.momentum_steps = None
  with pytest.raises(ValueError, match="momentum_steps"):
    registry.get_method(method_config)


def test_moco_pair_loss_with_intra_negatives_matches_loop():
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
  queue, intra = rng.normal(size=(7, 4)), rng.normal(size=(5, 2, 4))
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  for in_batch in (False, True):
    expected = []
    for i in range(5):
      logits = [unit(q[i]) @ unit(k[i])]
      logits += [unit(q[i]) @ unit(k[j]) for j in range(5) if in_batch and j != i]
      logits += [unit(q[i]) @ unit(row) for row in queue]
      logits += [unit(q[i]) @ unit(row) for row in intra[i]]
      logits = np.array(logits) / 0.2
      expected.append(np.log(np.sum(np.exp(logits))) - logits[0])
    # One jit per variant: eagerly, every primitive would compile on its own.
    got = jax.jit(lambda *a, in_batch=in_batch: moco.moco_pair_loss(
        *a[:2], 0.2, queue=a[2], in_batch_negatives=in_batch, intra_keys=a[3]))(q, k, queue, intra)
    np.testing.assert_allclose(got, np.mean(expected), rtol=1e-5)
  # Without intra negatives it is the shared MoCo loss.
  without, shared = jax.jit(lambda q, k, queue: (
      moco.moco_pair_loss(q, k, 0.2, queue=queue),
      losses.moco_info_nce(q, k, 0.2, queue=queue, in_batch_negatives=False)))(q, k, queue)
  np.testing.assert_allclose(without, shared, rtol=1e-6)


def test_sinkhorn_marginals_over_the_global_batch():
  # SwAV's scores: cosines between unit embeddings and unit prototypes.
  embeddings, prototypes = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 8))
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)
  scores = unit(embeddings) @ unit(prototypes[:6]).T
  mesh = sharding.make_mesh({"data": 8})
  sinkhorn = jax.jit(lambda s: (losses.sinkhorn(s, 0.05, 3), losses.sinkhorn(s, 0.05, 100)),
                     in_shardings=sharding.batch_sharding(mesh),
                     out_shardings=sharding.replicated(mesh))
  codes, converged = sinkhorn(jax.device_put(scores, sharding.batch_sharding(mesh)))
  np.testing.assert_allclose(codes, losses.sinkhorn(scores, 0.05, 3), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.sum(codes, axis=1), 1.0, rtol=1e-5)
  # Converged, each prototype gets exactly B / K of the global batch...
  np.testing.assert_allclose(np.sum(converged, axis=0), 16 / 6, rtol=1e-3)
  # ...and SwAV's 3 iterations already balance far better than the plain softmax.
  softmax = jax.nn.softmax(scores / 0.05, axis=1)
  imbalance = lambda q: np.ptp(np.sum(q, axis=0)) / (16 / 6)
  assert imbalance(codes) < 0.5 * imbalance(softmax)


def test_frame_differences_and_plain_views():
  clips = np.random.default_rng(1).integers(0, 256, (2, 2, 3, 2, 2, 3), dtype=np.uint8)
  x = clips.astype(np.float32) / 255
  expected = np.concatenate([x[:, :, 1:] - x[:, :, :-1], x[:, :, 2:] - x[:, :, 1:2]], axis=2)
  np.testing.assert_allclose(video_options.frame_differences(jnp.asarray(x)), expected, atol=1e-6)
  key = jax.random.PRNGKey(0)
  def prepare_fn(clips, key, options):
    video = video_options.prepare(clips, key, options)
    return video.views, video.intra_negatives
  prepare = jax.jit(prepare_fn, static_argnums=2)
  plain, no_negatives = prepare(clips, key, video_options.VideoOptions())
  np.testing.assert_array_equal(plain, jax.jit(base.normalize_clips)(clips))
  assert no_negatives is None
  alternate, _ = prepare(clips, key, video_options.VideoOptions(frame_difference="alternate"))
  np.testing.assert_array_equal(alternate[:, 0], plain[:, 0])
  np.testing.assert_allclose(alternate[:, 1], expected[:, 1] / np.float32(base.CLIP_STD[0]),
                             rtol=1e-5, atol=1e-6)


def test_background_erasing_mixes_a_static_frame_of_the_clip():
  # Frame t of every clip is the constant image value[t], so an erased frame is
  # (1 - w) * value[t] + w * value[t*]; recover (w, t*) and check them.
  rng = np.random.default_rng(2)
  values = rng.uniform(0, 1, (4, 3, 5)).astype(np.float32)
  clips = np.broadcast_to(values[:, :, :, None, None, None], (4, 3, 5, 2, 2, 3))
  erase = jax.jit(lambda x, key: video_options.background_erasing(x, key, prob=0.5,
                                                                   max_weight=0.3))
  erased = np.asarray(erase(clips, jax.random.PRNGKey(4)))
  erased_views = 0
  for b in range(4):
    for v in range(3):
      frames, original = erased[b, v, :, 0, 0, 0], values[b, v]
      if np.allclose(frames, original, atol=1e-6):
        continue
      erased_views += 1
      fits = []
      for static in range(5):
        gap = original[static] - original
        weight = np.sum((frames - original) * gap) / np.sum(gap * gap)
        fits.append((np.max(np.abs(original + weight * gap - frames)), weight))
      error, weight = min(fits)
      assert error < 1e-5 and 0 < weight <= 0.3
  assert 0 < erased_views < 12  # prob 0.5 over 12 views: some, not all (seeded).


def test_intra_video_negatives_share_frames_not_order():
  clips = np.random.default_rng(3).integers(0, 256, (6, 2, 4, 2, 2, 3), dtype=np.uint8)
  negatives = np.asarray(jax.jit(lambda x, key: video_options.intra_video_negatives(
      x, key, ("shuffle", "repeat")))(clips, jax.random.PRNGKey(5)))
  assert negatives.shape == (6, 2, 4, 2, 2, 3)
  for b in range(6):
    anchor = clips[b, 0]
    shuffled, repeated = negatives[b, 0], negatives[b, 1]
    order = [next(t for t in range(4) if np.array_equal(frame, anchor[t])) for frame in shuffled]
    assert sorted(order) == [0, 1, 2, 3] and order != [0, 1, 2, 3]
    assert all(np.array_equal(frame, repeated[0]) for frame in repeated)
    assert any(np.array_equal(repeated[0], frame) for frame in anchor)


def test_video_options_are_validated():
  config = zoo_config("unused", "byol")
  config.method.video = dict(background_erasing=0.5)
  with pytest.raises(ValueError, match="unknown key.*background_erasing_prob"):
    registry.get_method(config.method)
  config.method.video = dict(intra_negatives=("shuffle",))
  with pytest.raises(ValueError, match="byol has no negatives"):
    registry.get_method(config.method)
  config = zoo_config("unused", "moco_v2")
  config.method.video = dict(frame_difference="optical_flow")
  with pytest.raises(ValueError, match="frame_difference"):
    registry.get_method(config.method)


@pytest.mark.parametrize("name, method, views, batch, epochs", [
    ("rho_moco_slow_r50_kinetics400", "moco_v2", 2, 64, 200),
    ("rho_byol_slow_r50_kinetics400", "byol", 2, 64, 200),
    ("cvrl_r3d50_kinetics400", "simclr", 2, 1024, 200)])
def test_real_data_recipes_build(name, method, views, batch, epochs):
  # Building only (shapes, no compile): a runlocal training run of each costs ~40 s of
  # compile on this CPU; they share their code paths with the zoo runs above.
  config = config_lib.load_config(f"configs/pretrain/{name}.py")
  assert (config.method.name, config.method.num_views) == (method, views)
  assert (config.train.batch_size, config.train.num_steps) == (batch, epochs * 240_258 // batch)
  if "momentum_steps" in config.method:
    assert config.method.momentum_steps == config.train.num_steps
  for arg in ("runlocal", "rho4,runlocal") if name.startswith("rho") else ("runlocal",):
    local = config_lib.load_config(f"configs/pretrain/{name}.py:{arg}")
    assert local.model.backbone == "r3d_tiny" and local.train.batch_size == 8
    assert registry.get_method(local.method).num_views == (4 if "rho4" in arg else 2)
    model = nnx.eval_shape(lambda: trainer.build_model(local, 400)[1])
    assert model.backbone.feature_dim == 64


@pytest.mark.parametrize("method", sorted(METHOD_VARIANTS))
def test_synthactions_config_files_are_the_shared_recipe(method):
  from ssvbench import recipes
  for arg in (None, "runlocal"):
    spec = f"configs/pretrain/{method}_r3d_synthactions.py" + (f":{arg}" if arg else "")
    loaded = config_lib.load_config(spec)
    expected = recipes.synthactions_pretrain(method, runlocal=arg == "runlocal")
    assert loaded.to_dict() == expected.to_dict()
    assert loaded.method.name == method


def test_a_missing_method_key_is_one_line_naming_it():
  config = ml_collections.ConfigDict(dict(recipes.METHOD_DEFAULTS["simclr"]))
  del config["proj_hidden_dim"]
  method = registry.get_method(config)
  backbone = nnx.eval_shape(lambda: build_backbone("r3d_tiny", rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"config.method.proj_hidden_dim is required by method "
                                       r"'simclr'"):
    method.build_model(backbone, 4, nnx.Rngs(0))


def test_an_old_run_without_a_method_key_loads_with_the_former_code_default(tmp_path):
  config = recipes.synthactions_pretrain("simclr", store_dir="")
  del config.method["proj_hidden_dim"]
  (tmp_path / runs.CONFIG_FILE).write_text(config_lib.to_json(config))
  loaded = runs.load_config(tmp_path)
  # The value it was trained with (the code default then), not the recipe's 256.
  assert loaded.method.proj_hidden_dim == 512
  assert recipes.METHOD_DEFAULTS["simclr"]["proj_hidden_dim"] == 256


def test_the_registry_names_every_method_by_its_own_name():
  # A string table (module, class): looking one up imports only that module.
  for name in registry.available_methods():
    assert registry.method_class(name).name == name
  with pytest.raises(ValueError, match="unknown method 'simclr2'; available: barlow_twins"):
    registry.method_class("simclr2")
