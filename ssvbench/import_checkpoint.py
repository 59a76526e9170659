"""`ssvbench import-checkpoint`: a published PyTorch checkpoint -> an ssvbench run directory.

Why: most published video SSL models are PyTorch state dicts. Converting one into an
ssvbench workdir (a ``random_init`` run, i.e. "never trained here", whose step-0
checkpoint holds the imported backbone) lets ``ssvbench evaluate`` score it under the
same protocol, views and evaluators as JAX-trained runs, so the leaderboard is one table.
The weight conversion (layouts, key mapping, input normalisation of each source) is
``ssvbench.models.import_torch``; this module writes the run (config.json and the
step-0 train state the trainer would have written, see ``ssvbench.runs``).
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from ssvbench import config as config_lib
from ssvbench import hashing, recipes, runs
from ssvbench.data import store as store_lib
from ssvbench.models import import_torch
from ssvbench.models import input_norm as input_norm_lib
from ssvbench.train import checkpoint as checkpoint_lib
from ssvbench.train import sharding, trainer


def import_checkpoint(arch: str, source: str | pathlib.Path, out_dir: str | pathlib.Path,
                      store_dir: str | pathlib.Path | None = None,
                      input_norm: Any = None) -> dict[str, Any]:
  """Converts ``source`` and writes a ``random_init`` run with it into ``out_dir``.

  Args:
    arch: one of import_torch.ARCHES (the backbone name of the run).
    source: .pth/.pyth/.pt (needs torch) or .safetensors file.
    out_dir: the new workdir (must not hold checkpoints yet).
    store_dir: optionally, a prepared store recorded as the run's data, which
      ``ssvbench evaluate`` then uses by default. Without it the run records no data
      and every evaluation names its dataset with ``evaluate --store``. (The imported
      model is a backbone without a classifier, so no class count is needed.)
    input_norm: the pixel statistics the checkpoint was trained with (anything
      ``input_norm.from_config`` accepts); default: the source's, import_torch.SOURCE_INPUT_NORM[arch].

  Returns:
    A summary: workdir, arch, layout, input normalisation, converted and ignored keys,
    source sha256.
  """
  if arch not in import_torch.ARCHES:
    raise ValueError(f"import-checkpoint: unknown --arch {arch!r}; valid: {', '.join(import_torch.ARCHES)}")
  norm = (import_torch.SOURCE_INPUT_NORM[arch] if input_norm is None
          else input_norm_lib.from_config(input_norm))
  source, out_dir = pathlib.Path(source), pathlib.Path(out_dir)
  checkpoint_dir = runs.checkpoint_dir(out_dir)
  if (out_dir / runs.CONFIG_FILE).exists() or (checkpoint_dir.is_dir()
                                            and any(checkpoint_dir.iterdir())):
    raise FileExistsError(f"{out_dir} already holds a run; choose a new --out")
  state_dict = import_torch.load_state_dict(source)
  arrays, overrides, layout, ignored = import_torch.convert_state_dict(
      arch, state_dict, import_torch.backbone_target_shapes(arch), str(source))
  if store_dir is not None:
    store_lib.PreparedStore(store_dir)  # Fails now, naming the problem, if it is not one.
  config = recipes.synthactions_pretrain(
      "random_init", store_dir=str(store_dir) if store_dir is not None else "")
  config.model = ml_collections.ConfigDict(dict(backbone=arch, dtype="float32",
                                                overrides=overrides,
                                                input_norm=norm.to_dict()))
  config.train.num_steps = 0
  digest = hashing.file_sha256(source)
  config.imported_checkpoint = ml_collections.ConfigDict(dict(
      file=str(source.resolve()), sha256=digest, layout=layout))

  # The train state the trainer would write for this config (abstract: nothing is
  # initialised), filled with the converted backbone.
  mesh = sharding.make_mesh()
  optimizer = trainer.make_optimizer(config.optim, 0)
  _, _, abstract = trainer.create_train_state(config, 0, optimizer, mesh, abstract_only=True)
  replicated = sharding.replicated(mesh)
  train_state = dict(abstract)
  for part in ("params", "rest"):
    filled = []
    for path, value in nnx.to_flat_state(abstract[part]):
      if path[0] != "backbone" or tuple(path[1:]) not in arrays:
        raise AssertionError(f"import-checkpoint: no converted value for {path}")
      target = value.get_value() if isinstance(value, nnx.Variable) else value
      placed = jax.device_put(arrays[tuple(path[1:])], target.sharding)
      filled.append((path, value.replace(placed) if isinstance(value, nnx.Variable) else placed))
    train_state[part] = nnx.from_flat_state(filled)
  train_state["opt_state"] = jax.jit(
      optimizer.init, out_shardings=trainer.shardings_of(abstract["opt_state"]))(
          train_state["params"])
  train_state["step"] = jax.device_put(np.zeros((), np.int32), replicated)
  train_state["rng"] = jax.device_put(jax.random.PRNGKey(config.seed + 2), replicated)
  shape_of = lambda tree: jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), tree)
  if shape_of(train_state) != shape_of(abstract):
    raise AssertionError("import-checkpoint: the filled state differs from the trainer's")
  checkpointer = checkpoint_lib.Checkpointer(checkpoint_dir)
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / runs.CONFIG_FILE).write_text(config_lib.to_json(config))
    checkpointer.save(0, train_state)
  finally:
    checkpointer.close()
  return {"workdir": str(out_dir), "arch": arch, "layout": layout, "overrides": overrides,
          "input_norm": norm.to_dict(),
          "converted_tensors": len(arrays), "ignored_keys": ignored, "sha256": digest}
