"""The one training loop, for every method.

`jax.jit` of a plain function over the split NNX state (graphdef static, parameters and
batch statistics as pytrees), with `NamedSharding`s on a mesh from the config and the
train state donated. The loop feeds global batches assembled from each process's rows,
logs sums over the logging interval to `metrics.jsonl` and TensorBoard, shows steps/s
and ETA, and checkpoints the train state together with the data iterator so that
`resume=True` continues exactly where the run stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from ssvbench import config as config_lib
from ssvbench.data import pipeline, store as store_lib
from ssvbench.data import record_indices as record_indices_lib
from ssvbench.methods import registry as methods_registry
from ssvbench.models import registry as models
from ssvbench.models import sharding_rules
from ssvbench.train import checkpoint as checkpoint_lib
from ssvbench.train import online_eval
from ssvbench.train import preemption
from ssvbench.train import progress as progress_lib
from ssvbench.train import resume as resume_lib
from ssvbench.train import sharding

CHECKPOINT_SUBDIR = "checkpoints"


@dataclasses.dataclass
class TrainResult:
  workdir: pathlib.Path
  step: int
  last_metrics: dict[str, float]


def build_model(config: ml_collections.ConfigDict, num_classes: int, method=None):
  """Builds (method, model) from a pre-training config; deterministic in `config.seed`.

  `method` is the run's method object when the caller has built it (once per run);
  otherwise it is built from `config.method`."""
  method = method if method is not None else methods_registry.get_method(config.method)
  # RBG keys: XLA's RngBitGenerator is one op, so initialising a network compiles ~4x
  # faster on CPU than with threefry (minutes -> under a minute for a 3D ResNet).
  rngs = nnx.Rngs(params=jax.random.key(config.seed, impl="rbg"),
                  dropout=jax.random.key(config.seed + 1, impl="rbg"))
  dtype = jnp.dtype(config.model.get("dtype", "float32"))
  overrides = dict(config.model.get("overrides", {}) or {})
  backbone = models.build_backbone(config.model.backbone, rngs=rngs, dtype=dtype,
                                   input_norm=config.model.get("input_norm", None), **overrides)
  return method, method.build_model(backbone, num_classes, rngs)


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """Optimiser with linear warm-up and cosine decay, from `config.optim`."""
  warmup = min(int(optim.get("warmup_steps", 0)), max(num_steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else optim.lr, peak_value=optim.lr, warmup_steps=warmup,
      decay_steps=max(num_steps, warmup + 1), end_value=optim.lr * optim.get("final_lr_fraction", 0.0))
  name = optim.name
  weight_decay = optim.get("weight_decay", 0.0)
  if name == "adamw":
    return optax.adamw(schedule, weight_decay=weight_decay)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=optim.get("momentum", 0.9), nesterov=False))
  if name == "lars":
    return optax.lars(schedule, weight_decay=weight_decay, momentum=optim.get("momentum", 0.9))
  raise ValueError(f"config.optim.name={name!r}: expected one of adamw, sgd, lars.")


def split_model(model: nnx.Module):
  """(graphdef, params, rest): rest holds batch statistics and other non-trained state."""
  return nnx.split(model, nnx.Param, ...)


def make_train_step(method, graphdef, optimizer, mesh, state_shardings=None,
                    skip_nonfinite: bool = False):
  """The jitted step: (state, batch) -> (state, metrics), state donated.

  ``state_shardings``: the state's layout (a tree of shardings, e.g. ``shardings_of(state)``
  of a state from ``create_train_state``); None replicates it. The step keeps it.
  ``skip_nonfinite``: a step whose loss or gradient norm is not finite leaves parameters,
  batch statistics and optimiser state as they were (the step counter still advances,
  its batch is consumed) and reports ``skipped=1``; finite steps compute the same values.
  """

  def step_fn(state, batch):
    rng = jax.random.fold_in(state["rng"], state["step"])

    # `rest` enters as an argument so that batch statistics are created at the grad
    # trace level and may be updated there.
    def loss_fn(params, rest):
      model = nnx.merge(graphdef, params, rest, copy=True)
      loss, metrics = method.loss(model, batch, rng)
      _, _, rest = split_model(model)
      return loss, (metrics, rest)

    (loss, (metrics, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], state["rest"])
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    # State updated outside the gradient (EMA targets, queues) sees the new parameters.
    rest = method.after_update(params, rest, state["step"])
    metrics["grad_norm"] = optax.global_norm(grads)
    if skip_nonfinite:
      finite = jnp.isfinite(loss) & jnp.isfinite(metrics["grad_norm"])
      keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
      params, rest = keep(params, state["params"]), keep(rest, state["rest"])
      opt_state = keep(opt_state, state["opt_state"])
      metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
    new_state = dict(state, params=params, rest=rest, opt_state=opt_state, step=state["step"] + 1)
    return new_state, metrics

  replicated = sharding.replicated(mesh)
  state_shardings = replicated if state_shardings is None else state_shardings
  return jax.jit(step_fn, in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(state_shardings, replicated), donate_argnums=0)


def shardings_of(tree: Any) -> Any:
  """The sharding of every leaf (arrays or ShapeDtypeStructs) of a state tree."""
  return jax.tree.map(lambda x: x.sharding, tree)


def state_shardings(shapes: dict, mesh, rules: str | dict = "replicated") -> dict:
  """Where each part of a train state lives on the mesh, from the model's logical axes.

  Parameters follow ``rules`` (see ssvbench.models.sharding_rules: 'replicated',
  'tensor', 'fsdp'). Every other leaf whose path ends with a parameter's path and has its
  shape -- Adam's moments, an EMA target network ('target' + the parameter's path) --
  is laid out like that parameter; the rest (batch statistics, counters, the rng) is
  replicated. With 'replicated', or a mesh without a 'model' axis, everything is.

  Args:
    shapes: the state's structure ({params, rest, opt_state, step, rng}), e.g. from
      ``jax.eval_shape``.
    mesh: the device mesh.
    rules: a name of ``sharding_rules.RULES`` or a {logical axis: mesh axis} mapping.

  Returns:
    A tree of NamedShardings with the structure of ``shapes``.
  """
  replicated = sharding.replicated(mesh)
  param_shardings = sharding_rules.named_shardings(shapes["params"], mesh, rules)
  by_path = {}
  for (path, value), (_, placed) in zip(
      jax.tree_util.tree_leaves_with_path(shapes["params"]),
      jax.tree_util.tree_leaves_with_path(param_shardings)):
    by_path[path] = (tuple(value.shape), placed)

  def place(path, value):
    for start in range(len(path)):
      match = by_path.get(path[start:])
      if match is not None and match[0] == tuple(value.shape):
        return match[1]
    return replicated

  placed = jax.tree_util.tree_map_with_path(place, {k: v for k, v in shapes.items()
                                                    if k != "params"})
  return {"params": param_shardings, **placed}


def create_train_state(config: ml_collections.ConfigDict, num_classes: int, optimizer, mesh, *,
                       abstract_only: bool = False, method=None):
  """Builds the model and its train state inside ONE jit.

  Initialising eagerly compiles every initialiser op separately (dozens of compiles that
  cost a minute on a small CPU); inside one jit it is one compile. The graphdef comes
  from an abstract (shape-only) model.

  Args:
    config: the pre-training config.
    num_classes: size of the label space (for supervised heads).
    optimizer: the optax transformation whose state is initialised.
    mesh: the state is placed replicated on this mesh.
    abstract_only: return ShapeDtypeStructs (with shardings) instead of arrays, e.g. as a
      restore target; nothing is computed.
    method: the run's method object if already built (a run builds it once).

  Returns:
    (method, graphdef, state) with state = {params, rest, opt_state, step, rng}.
  """
  method = method if method is not None else methods_registry.get_method(config.method)

  def make_model():
    _, model = build_model(config, num_classes, method)
    model.train()
    return model

  graphdef, _, _ = split_model(nnx.eval_shape(make_model))

  def create():
    _, params, rest = split_model(make_model())
    return {
        "params": params,
        "rest": rest,
        "opt_state": optimizer.init(params),
        "step": jnp.zeros((), jnp.int32),
        "rng": jax.random.PRNGKey(config.seed + 2),
    }

  shapes = jax.eval_shape(create)
  rules = config.get("param_sharding", "replicated")
  if isinstance(rules, str) and rules not in sharding_rules.RULES:
    raise ValueError(f"config.param_sharding={rules!r}: expected one of "
                     f"{', '.join(sharding_rules.RULES)}.")
  placement = state_shardings(shapes, mesh, rules)
  if abstract_only:
    state = jax.tree.map(lambda s, where: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=where),
                         shapes, placement)
  else:
    state = jax.jit(create, out_shardings=placement)()
  return method, graphdef, state


def open_store(config: ml_collections.ConfigDict) -> store_lib.PreparedStore:
  return store_lib.PreparedStore(config.data.store_dir)


def run_store_dir(workdir, config: ml_collections.ConfigDict, store_dir=None) -> str:
  """The store a run is evaluated or fine-tuned on: `store_dir` if given, else the one its
  config records; a run that records none (a checkpoint imported without --store) needs
  `--store`, and this error says so."""
  if not (store_dir or config.data.store_dir):
    raise ValueError(f"{workdir} records no dataset (a checkpoint imported without "
                     "--store): name the data with `--store DIR` (a prepared store).")
  return str(store_dir or config.data.store_dir)


def make_data_iterator(config, store, method, workdir=None):
  dataset = pipeline.make_train_dataset(
      store.data_source(config.data.get("split", "train")),
      num_clips=method.num_views,
      num_frames=config.data.num_frames,
      frame_stride=config.data.frame_stride,
      crop_size=config.data.crop_size,
      global_batch_size=config.train.batch_size,
      seed=config.seed,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      augment=config.data.get("augment", None),
      worker_count=config.data.get("worker_count", 0),
      # Fine-tuning trains on the split minus its carved validation part (a file in the
      # workdir named by its hash, see ssvbench.data.record_indices).
      record_indices=record_indices_lib.read(workdir, config.data.get("record_indices", None)),
  )
  return iter(dataset)


class TrainingDiverged(RuntimeError):
  """A non-finite loss or gradient norm under `train.on_nonfinite='stop'`; exit status 3."""

  exit_code = 3


ON_NONFINITE = ("stop", "skip")


def _check_train_config(config: ml_collections.ConfigDict, num_steps: int) -> str:
  """Checks what the loop needs before anything is written; returns the divergence mode."""
  if num_steps <= 0:
    raise ValueError(f"config.train.num_steps={config.train.num_steps}: expected a positive "
                     "number of steps.")
  for key in ("log_every", "checkpoint_every", "keep_checkpoints"):
    value = config.train.get(key, None)
    if value is not None and int(value) < (0 if key == "checkpoint_every" else 1):
      raise ValueError(f"config.train.{key}={value}: expected a positive number.")
  mode = config.train.get("on_nonfinite", "stop")
  if mode not in ON_NONFINITE:
    raise ValueError(f"config.train.on_nonfinite={mode!r}: expected one of "
                     f"{', '.join(ON_NONFINITE)}.")
  return mode


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _nonfinite_metrics(metrics) -> list[str]:
  return [f"{name}={float(metrics[name])}" for name in ("loss", "grad_norm")
          if name in metrics and not np.isfinite(metrics[name])]


def _restore(checkpointer, state, data_iterator, workdir):
  """Restores the latest checkpoint; a model that does not fit it is one line."""
  step = checkpointer.latest_step()
  try:
    try:
      return checkpointer.restore(state, data_iterator)
    except TypeError as error:
      # Seen once in a resume (2026-12-03): "'LazyModule' object is not callable", raised
      # by a lazily imported module inside the restore threads, gone on a second try. A
      # real mismatch fails the same way twice.
      logging.warning("restoring %s failed (%s); trying once more", workdir, error)
      return checkpointer.restore(state, data_iterator)
  except (ValueError, TypeError, KeyError) as error:
    first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    raise ValueError(f"{workdir}: checkpoint step {step} does not fit the model of this "
                     f"config (architecture or parameter shapes differ: {first}); resume "
                     "with the run's config.json.") from None


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
          resume: bool = False, progress: bool = True,
          allow_changes: tuple[str, ...] = (),
          init_state: Callable[[dict, Any, Any], dict] | None = None) -> TrainResult:
  """Pre-trains `config.method` on `config.data` and checkpoints into `workdir`.

  Args:
    config: a pre-training config (see configs/pretrain/).
    workdir: where checkpoints, metrics.jsonl, TensorBoard logs and config.json go.
    resume: continue from the latest checkpoint in `workdir` (model, optimiser and data
      order); without it, a workdir that already holds checkpoints is an error. The
      config must equal the run's config.json except for keys in `allow_changes`.
    progress: show a progress bar (a plain log line per logging step off a terminal).
    allow_changes: dotted config keys (or prefixes) a resume may change; the changes are
      recorded in `config_changes.jsonl`.
    init_state: `(state, optimizer, mesh) -> state`, called once on the fresh state when
      there is no checkpoint to resume (e.g. `ssvbench.runs.initial_state_for(config)`
      copies the backbone of the run `config.train.init_from` names). The trainer reads
      no other run itself; a config with `train.init_from` and no callback is an error.

  Returns:
    A TrainResult: the workdir, the final step and the last logged metrics.

  Raises:
    preemption.Preempted: SIGTERM/SIGINT arrived; the step it arrived in was finished
      and checkpointed.
    TrainingDiverged: a non-finite loss or gradient norm (with on_nonfinite='stop');
      the checkpoints on disk are all finite.
    ValueError, store.StoreError: bad config or data, before anything is written.
  """
  workdir = pathlib.Path(workdir)
  if config.train.get("init_from", None) and init_state is None:
    raise ValueError("config.train.init_from is set but no init_state callback was given; "
                     "start the run through ssvbench.runs.initial_state_for(config).")
  method = methods_registry.get_method(config.method)
  num_steps = int(config.train.num_steps) if method.trains else 0
  on_nonfinite = _check_train_config(config, num_steps) if method.trains else "stop"
  # Everything that can be checked is checked before the workdir exists, so a mistake
  # (e.g. pretrain before prepare) leaves nothing behind.
  store = open_store(config)
  mesh = sharding.make_mesh(config.get("mesh", None))
  global_batch = int(config.train.batch_size)
  if global_batch % sharding.data_parallel_size(mesh):
    raise ValueError(f"config.train.batch_size={global_batch} is not divisible by the "
                     f"{sharding.data_parallel_size(mesh)} devices of the data axis.")
  changes = {}
  if resume and checkpoint_lib.has_checkpoints(workdir / CHECKPOINT_SUBDIR):
    changes = resume_lib.check_resume_config(workdir, config, allow_changes)
  optimizer = make_optimizer(config.optim, num_steps)
  method, graphdef, state = create_train_state(config, store.num_classes, optimizer, mesh,
                                               method=method)
  # Off unless config.train.eval_every > 0: reads the state, never changes training. Built
  # (and its settings checked) before anything is written; it writes nothing until run.
  monitor = online_eval.from_config(config, store, graphdef, mesh, workdir) if num_steps else None

  workdir.mkdir(parents=True, exist_ok=True)
  checkpointer = checkpoint_lib.Checkpointer(workdir / CHECKPOINT_SUBDIR,
                                             max_to_keep=config.train.get("keep_checkpoints", 2),
                                             remove_stale=True)
  try:
    data_iterator = make_data_iterator(config, store, method, workdir) if num_steps else None
    start_step = 0
    if checkpointer.latest_step() is not None:
      if not resume:
        raise FileExistsError(f"{workdir} already holds checkpoints (latest step "
                              f"{checkpointer.latest_step()}); pass --resume to continue it, "
                              "or choose a new workdir.")
      start_step, state = _restore(checkpointer, state, data_iterator, workdir)
      logging.info("resumed from step %d", start_step)
    else:
      if resume:
        logging.info("no checkpoint in %s yet, starting from scratch.", workdir)
      if init_state is not None:
        state = init_state(state, optimizer, mesh)
    if jax.process_index() == 0:
      resume_lib.record_changes(workdir, start_step, changes)
      (workdir / "config.json").write_text(config_lib.to_json(config))

    last_metrics: dict[str, float] = {}
    if num_steps and start_step < num_steps:
      last_metrics = _loop(config, workdir, monitor, method, graphdef, optimizer, mesh, state,
                           data_iterator, checkpointer, start_step, num_steps, on_nonfinite,
                           progress)
    elif checkpointer.latest_step() is None:
      checkpointer.save(0, state, data_iterator)
    final_step = checkpointer.latest_step()
  finally:
    checkpointer.close()
  return TrainResult(workdir=workdir, step=int(final_step), last_metrics=last_metrics)


def _loop(config, workdir, monitor, method, graphdef, optimizer, mesh, state, data_iterator,
          checkpointer, start_step, num_steps, on_nonfinite, progress) -> dict[str, float]:
  """Steps `start_step+1 .. num_steps`, with logging, checkpoints, signals and the guard."""
  # The handlers are in place before metrics.jsonl is opened: a signal from then on
  # (also during the first step's compile) ends in a checkpoint.
  with preemption.PreemptionGuard() as guard:
    return _steps(guard, config, workdir, monitor, method, graphdef, optimizer, mesh, state,
                  data_iterator, checkpointer, start_step, num_steps, on_nonfinite, progress)


def _steps(guard, config, workdir, monitor, method, graphdef, optimizer, mesh, state,
           data_iterator, checkpointer, start_step, num_steps, on_nonfinite,
           progress) -> dict[str, float]:
  """The steps; a signal (guard), a non-finite metric (on_nonfinite) end them early."""
  train_step = make_train_step(method, graphdef, optimizer, mesh, shardings_of(state),
                               skip_nonfinite=on_nonfinite == "skip")
  logger = progress_lib.MetricLogger(workdir, total_steps=num_steps, start_step=start_step,
                                     show_bar=progress, description=f"pretrain {method.name}")
  log_every = int(config.train.get("log_every", 10))
  checkpoint_every = int(config.train.get("checkpoint_every", 0)) or num_steps
  last_metrics: dict[str, float] = {}

  def save(step):
    # Rotation deletes the oldest checkpoints, so a non-finite state must never be
    # saved: it would push the last finite one out.
    if not bool(_all_finite({k: state[k] for k in ("params", "rest", "opt_state")})):
      raise TrainingDiverged(f"step {step}: the parameters are not finite; not saved. The "
                             f"last finite checkpoint is step {checkpointer.latest_step()} in "
                             f"{checkpointer.directory}.")
    checkpointer.save(step, state, data_iterator)

  try:
    for step in range(start_step + 1, num_steps + 1):
      local = next(data_iterator)
      batch = sharding.global_batch({"clips": local["clips"], "label": local["label"]}, mesh)
      state, metrics = train_step(state, batch)
      metrics = jax.device_get(metrics)
      bad = _nonfinite_metrics(metrics)
      if bad and on_nonfinite == "stop":
        logger.accumulate(metrics)
        logger.write(step)
        raise TrainingDiverged(
            f"step {step}: non-finite {', '.join(bad)}; training stopped. The last finite "
            f"checkpoint is step {checkpointer.latest_step()} in {checkpointer.directory}; "
            "lower config.optim.lr, or set config.train.on_nonfinite=skip to skip such "
            "steps.")
      if bad:
        logger.skip()
      else:
        logger.accumulate(metrics)
      written = saved = False
      if step % log_every == 0 or step == num_steps:
        last_metrics, written = logger.write(step), True
      else:
        logger.tick(step)
      if step % checkpoint_every == 0 or step == num_steps:
        save(step)
        saved = True
      if monitor is not None and monitor.due(step):
        monitor.run(step, state)
      if guard.should_stop(step) and step < num_steps:
        if not saved:
          save(step)
        if not written:
          last_metrics = logger.write(step)
        raise preemption.Preempted(guard.signum, step, workdir)
  finally:
    logger.close()
    if monitor is not None:
      monitor.close()
  return last_metrics
