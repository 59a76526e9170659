"""A run directory: what `ssvbench pretrain` (or fine-tuning, or import-checkpoint) writes,
and the one way to read it back.

Layout of a run directory `workdir/`:
  config.json        the whole resolved config the run was trained with (CONFIG_FILE)
  checkpoints/<step> orbax checkpoints (CHECKPOINT_SUBDIR; written by train/checkpoint.py)
  metrics.jsonl, TensorBoard logs, config_changes.jsonl (written by the trainer)

Why a module of its own: evaluation, fine-tuning, the benchmark runner and the import of
foreign checkpoints all read runs; before, each knew the layout and restored models its
own way. Here reading a run (its config, its steps, a trained model, a weights
fingerprint) is one path, and starting a run from another run's backbone is a callback
the trainer is given (`backbone_initializer`), so the trainer never reads other runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
from typing import Callable, Iterator

import jax
import ml_collections
import numpy as np
from flax import nnx

from ssvbench.methods import registry as methods_registry
from ssvbench.train import checkpoint as checkpoint_lib
from ssvbench.train import sharding, trainer

CONFIG_FILE = "config.json"

# The defaults the method code applied before the recipes became their only source (they
# now read required keys). A run directory written then may lack a key it was trained
# with the code default of; loading it fills exactly those values (never the recipe's,
# which can differ, e.g. simclr proj_hidden_dim 512 here vs 256 in the recipe), so an
# old run restores and evaluates as it was trained.
LEGACY_METHOD_DEFAULTS = {
    "*": {"num_views": 2},
    "simclr": {"proj_hidden_dim": 512, "proj_dim": 128, "proj_depth": 2, "temperature": 0.1},
    "moco_v2": {"queue_size": 0, "momentum_schedule": "constant", "momentum_steps": None},
    "moco_v3": {"queue_size": 0, "momentum_schedule": "constant", "momentum_steps": None},
    "byol": {"proj_depth": 2, "momentum_schedule": "constant", "momentum_steps": None},
    "swav": {"proj_depth": 2, "queue_size": 0, "freeze_prototypes_steps": 0,
             "queue_start_step": 0},
    "barlow_twins": {"proj_depth": 3},
    "vicreg": {"proj_depth": 3},
    "simsiam": {"proj_depth": 3},
    "supcon": {"proj_depth": 2},
    "videomae": {"num_views": 1, "mask_ratio": 0.9, "normalize_targets": True,
                 "decoder_depth": 4},
}
CHECKPOINT_SUBDIR = trainer.CHECKPOINT_SUBDIR


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(workdir) / CHECKPOINT_SUBDIR


def checkpoint_path(workdir: str | pathlib.Path, step: int) -> str:
  """The path of one saved step, as results records name their checkpoint."""
  return str(checkpoint_dir(workdir) / str(step))


def load_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """A run's config.json; a folder without one is a one-line FileNotFoundError."""
  workdir = pathlib.Path(workdir)
  config_file = workdir / CONFIG_FILE
  if not config_file.is_file():
    raise FileNotFoundError(f"{workdir} is not a pre-training workdir (no {CONFIG_FILE}); "
                            "run `ssvbench pretrain` first.")
  config = ml_collections.ConfigDict(json.loads(config_file.read_text()))
  _fill_legacy_method_keys(config, workdir)
  return config


def _fill_legacy_method_keys(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  method = config.get("method", None)
  if method is None or "name" not in method:
    return
  legacy = {**LEGACY_METHOD_DEFAULTS["*"], **LEGACY_METHOD_DEFAULTS.get(method.name, {})}
  missing = {key: value for key, value in legacy.items() if key not in method}
  if missing:
    logging.warning("%s/%s predates required method keys; using the values it was trained "
                    "with (the former code defaults): %s", workdir, CONFIG_FILE, missing)
    with method.unlocked():
      for key, value in missing.items():
        method[key] = value


def saved_steps(workdir: str | pathlib.Path) -> list[int]:
  """Steps of the finished checkpoints of a run (orbax's temporary folders excluded)."""
  directory = checkpoint_dir(workdir)
  if not directory.is_dir():
    return []
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def restored_models(workdir: str | pathlib.Path,
                    steps: list[int | None]) -> Iterator[tuple[ml_collections.ConfigDict, nnx.Module, int]]:
  """Yields (config, model in eval mode, step) for each of `steps` (None: the latest).

  The model is rebuilt from the run's config.json and the restore target is built once
  for all steps. The checkpoint is restored onto this process's devices, whatever mesh
  trained it.
  """
  workdir = pathlib.Path(workdir)
  config = load_config(workdir)
  method = methods_registry.get_method(config.method)
  # The class count comes from the recorded store; a run that records none (a checkpoint
  # imported without --store) is a backbone without a classifier.
  num_classes = trainer.open_store(config).num_classes if config.data.store_dir else 0
  optimizer = trainer.make_optimizer(config.optim,
                                     int(config.train.num_steps) if method.trains else 0)
  _, graphdef, abstract = trainer.create_train_state(config, num_classes, optimizer,
                                                     sharding.make_mesh(), abstract_only=True,
                                                     method=method)
  for step in steps:
    restored_step, state = checkpoint_lib.restore_state_only(checkpoint_dir(workdir), abstract,
                                                             step)
    model = nnx.merge(graphdef, state["params"], state["rest"])
    model.eval()
    yield config, model, restored_step


def load_trained_model(workdir: str | pathlib.Path, step: int | None = None):
  """Rebuilds a run's model from its config.json and restores checkpoint `step`.

  Returns:
    (config, model in eval mode, the restored step); `step=None` restores the latest.
  """
  return next(restored_models(workdir, [step]))


def params_fingerprint(model: nnx.Module) -> str:
  """A hash of a model's weights: the identity of a checkpoint for feature caches."""
  digest = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(nnx.state(model)),
                           key=lambda kv: jax.tree_util.keystr(kv[0])):
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return digest.hexdigest()[:16]


def init_backbone_from(state: dict, pretrain_workdir: str | pathlib.Path, optimizer, mesh) -> dict:
  """Copies a pre-training run's backbone (parameters and batch statistics) into `state`.

  Fine-tuning starts from the pre-trained backbone and a fresh head. Only the backbone
  is copied (a pre-training head has nothing to do with the new labels), and the
  optimiser state is re-initialised for the new parameters.

  Args:
    state: a fresh train state from `create_train_state` whose model has `.backbone`.
    pretrain_workdir: a `ssvbench pretrain` workdir (its latest checkpoint is used).
    optimizer: the optax transformation of this run.
    mesh: the state's mesh (the copied arrays take the layout of what they replace).

  Returns:
    The new state.
  """
  del mesh  # The copied arrays take the shardings of the arrays they replace.
  _, pretrained, step = load_trained_model(pretrain_workdir)
  _, params, rest = trainer.split_model(pretrained.backbone)
  state = dict(state)
  for name, copied in (("params", params), ("rest", rest)):
    tree = state[name]
    if "backbone" not in tree:
      if not jax.tree.leaves(copied):
        continue  # A backbone without batch statistics has an empty `rest`.
      raise ValueError(f"config.train.init_from: this run's model has no backbone {name}.")
    shapes = lambda t: {jax.tree_util.keystr(p): (x.shape, x.dtype)
                        for p, x in jax.tree_util.tree_leaves_with_path(t)}
    ours, theirs = shapes(tree["backbone"]), shapes(copied)
    if ours != theirs:
      differ = sorted(set(ours.items()) ^ set(theirs.items()), key=str)[:3]
      raise ValueError(f"config.train.init_from={pretrain_workdir}: its backbone {name} do not "
                       f"match this run's model (first differences: {differ}); fine-tune the "
                       "backbone architecture that was pre-trained.")
    tree["backbone"] = jax.device_put(copied, trainer.shardings_of(tree["backbone"]))
  state["opt_state"] = jax.jit(optimizer.init,
                               out_shardings=trainer.shardings_of(state["opt_state"]))(
      state["params"])
  logging.info("initialised the backbone from %s (step %d)", pretrain_workdir, step)
  return state


def initial_state_for(config: ml_collections.ConfigDict) -> Callable | None:
  """The trainer's `init_state` callback a config asks for: `config.train.init_from` (a
  run whose backbone starts this one), or None to start from the method's initialisation."""
  source = config.train.get("init_from", None)
  if not source:
    return None
  return lambda state, optimizer, mesh: init_backbone_from(state, source, optimizer, mesh)
