"""Published PyTorch checkpoints -> ssvbench backbone weights (the conversion; the run
directory is written by ``ssvbench.import_checkpoint``).

Why: most published video SSL models are PyTorch state dicts. Converting one into an
ssvbench workdir (a ``random_init`` run, i.e. "never trained here", whose step-0
checkpoint holds the imported backbone) lets ``ssvbench evaluate`` score it under the
same protocol, views and evaluators as JAX-trained runs, so the leaderboard is one table.

Supported layouts (the architecture is chosen with ``--arch``; the layout is detected):

* torchvision ``r3d_18``, ``mc3_18``, ``r2plus1d_18`` (``stem.0.weight``, ``layer1.0...``);
* ``slow_r50`` from pytorchvideo (``blocks.0.conv.weight``) or the SlowFast repository
  (``s1.pathway0_stem.conv.weight``, inside ``model_state``);
* VideoMAE ``vit3d_b16`` / ``vit3d_s16``: fine-tuned (``blocks.*`` + ``fc_norm``) or
  pre-trained (``encoder.*`` + ``encoder.norm``; the decoder is dropped). A full qkv
  bias (timm/MAE-ST style) is accepted: its key part is dropped, which changes nothing
  because a per-query constant added to all logits cancels in the softmax.

torchvision's ``s3d`` layout is refused by name (its BatchNorm epsilon differs from the
CoCLR S3D that ssvbench's ``s3d`` implements).

Each source's input normalisation is recorded with the run (``config.model.input_norm``,
see ``ssvbench.models.input_norm``): torchvision's Kinetics statistics for its video
ResNets, ImageNet's for CoCLR and VideoMAE, 0.45/0.225 for pytorchvideo/SlowFast's Slow;
``--input-norm`` or ``--input-mean/--input-std`` override it.

Classifier heads are not part of a backbone and are dropped. Any other mismatch is an
error listing every missing, unexpected and mis-shaped key. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Any, Callable

import numpy as np

from ssvbench.models import input_norm as input_norm_lib

ARCHES = ("r3d_18", "mc3_18", "r2plus1d_18", "slow_r50", "vit3d_b16", "vit3d_s16", "s3d",
          "s3dg")
# The pixel statistics each source trained with (see the module docstring).
SOURCE_INPUT_NORM = {
    "r3d_18": input_norm_lib.TORCHVISION_KINETICS,
    "mc3_18": input_norm_lib.TORCHVISION_KINETICS,
    "r2plus1d_18": input_norm_lib.TORCHVISION_KINETICS,
    "slow_r50": input_norm_lib.SSVBENCH,  # pytorchvideo / SlowFast DATA.MEAN, DATA.STD.
    "vit3d_b16": input_norm_lib.IMAGENET,  # VideoMAE: IMAGENET_DEFAULT_MEAN / _STD.
    "vit3d_s16": input_norm_lib.IMAGENET,
    "s3d": input_norm_lib.IMAGENET,  # CoCLR: T.Normalize(ImageNet mean, std).
    "s3dg": input_norm_lib.IMAGENET,
}
# Containers that published checkpoints wrap their state dict in.
_CONTAINER_KEYS = ("model_state", "state_dict", "model", "module")
# ssvbench leaf name -> torch leaf name.
_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias",
               "mean": "running_mean", "var": "running_var"}


class CheckpointMismatchError(ValueError):
  """The state dict does not fit the architecture; the message lists every problem."""


# ----------------------------------------------------------------------------- reading


def read_safetensors(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """Reads a .safetensors file into numpy arrays with the `safetensors` package.

  bfloat16 tensors come back as float32 (ml_dtypes, which JAX brings, gives numpy the
  bfloat16 type safetensors needs to read them; the widening is exact).
  """
  import ml_dtypes  # Registers bfloat16 with numpy before safetensors asks for it.
  from safetensors import SafetensorError
  from safetensors.numpy import load_file
  try:
    tensors = load_file(path)
  except (SafetensorError, TypeError) as error:
    raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
  return {name: (array.astype(np.float32) if array.dtype == ml_dtypes.bfloat16
                 else np.array(array))
          for name, array in tensors.items()}


def write_safetensors(tensors: dict[str, np.ndarray], path: str | pathlib.Path) -> None:
  """Writes numpy arrays as .safetensors (for tests and for sharing converted weights)."""
  from safetensors.numpy import save_file
  save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()}, str(path))


def read_torch(path: str | pathlib.Path) -> dict[str, Any]:
  """Loads a .pth/.pyth/.pt file with torch (weights only: no pickled code runs)."""
  try:
    import torch
  except ImportError:
    raise ImportError(f"reading {path} needs PyTorch (pip install torch); or save the state "
                      "dict as .safetensors, which ssvbench reads without it") from None
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as error:  # torch raises many types for unreadable files.
    raise ValueError(f"{path}: torch.load(weights_only=True) failed: {error}") from None
  return loaded


def load_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """The state dict of a checkpoint file as numpy arrays, unwrapped and un-prefixed.

  Unwraps the containers published checkpoints use (``model_state`` of SlowFast,
  ``model``/``module`` of VideoMAE, ``state_dict``) and DataParallel's ``module.`` prefix.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"checkpoint {path} does not exist")
  loaded = read_safetensors(path) if path.suffix == ".safetensors" else read_torch(path)
  while isinstance(loaded, dict):
    inner = next((loaded[k] for k in _CONTAINER_KEYS
                  if k in loaded and isinstance(loaded[k], dict)), None)
    if inner is None:
      break
    loaded = inner
  if not isinstance(loaded, dict):
    raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(loaded)}")
  arrays = {}
  for name, value in loaded.items():
    if hasattr(value, "detach"):  # A torch tensor; bfloat16 has no numpy dtype.
      value = value.detach().cpu()
      value = (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    if isinstance(value, np.ndarray):
      arrays[name[len("module."):] if name.startswith("module.") else name] = value
  if not arrays:
    raise ValueError(f"{path}: holds no tensors (top-level keys: {sorted(loaded)[:10]})")
  return arrays


# ----------------------------------------------------------------------------- layouts


@dataclasses.dataclass
class Layout:
  """How one published layout names the parameters of an ssvbench backbone.

  Attributes:
    name: layout name, recorded in the run's config.
    rules: (regex over the dotted target path, source key template); templates use
      ``{1}``.. for groups, ``{stage}`` for group 1 + ``stage_offset``, ``{leaf}`` for
      the torch name of the last group (kernel/scale -> weight, mean -> running_mean...).
    ignored: regexes of source keys that are not part of the backbone (heads, decoders).
    overrides: backbone overrides the checkpoint implies.
    stage_offset: number added to the stage index in source names.
  """
  name: str
  rules: list[tuple[str, str]]
  ignored: tuple[str, ...] = (r".*num_batches_tracked$",)
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  stage_offset: int = 1

  def source_key(self, target: str) -> str | None:
    for pattern, template in self.rules:
      match = re.fullmatch(pattern, target)
      if match:
        groups = match.groups()
        stage = int(groups[0]) + self.stage_offset if groups and groups[0].isdigit() else None
        leaf = _TORCH_LEAF.get(groups[-1], groups[-1]) if groups else None
        return template.format(None, *groups, stage=stage, leaf=leaf)
    return None


_S_B = r"stages\.(\d+)\.(\d+)"
_TORCHVISION = [
    (r"stem\.(?:conv|spatial\.conv)\.kernel", "stem.0.weight"),
    (r"stem\.(?:bn|spatial\.bn)\.(\w+)", "stem.1.{leaf}"),
    (r"stem\.temporal\.conv\.kernel", "stem.3.weight"),
    (r"stem\.temporal\.bn\.(\w+)", "stem.4.{leaf}"),
    (_S_B + r"\.(conv[12])\.conv\.kernel", "layer{stage}.{2}.{3}.0.weight"),
    (_S_B + r"\.(conv[12])\.spatial\.conv\.kernel", "layer{stage}.{2}.{3}.0.0.weight"),
    (_S_B + r"\.(conv[12])\.spatial\.bn\.(\w+)", "layer{stage}.{2}.{3}.0.1.{leaf}"),
    (_S_B + r"\.(conv[12])\.temporal\.kernel", "layer{stage}.{2}.{3}.0.3.weight"),
    (_S_B + r"\.bn([12])\.(\w+)", "layer{stage}.{2}.conv{3}.1.{leaf}"),
    (_S_B + r"\.downsample\.conv\.kernel", "layer{stage}.{2}.downsample.0.weight"),
    (_S_B + r"\.downsample\.bn\.(\w+)", "layer{stage}.{2}.downsample.1.{leaf}"),
]
_PYTORCHVIDEO_SLOW = [
    (r"stem\.conv\.kernel", "blocks.0.conv.weight"),
    (r"stem\.bn\.(\w+)", "blocks.0.norm.{leaf}"),
    (_S_B + r"\.([abc])\.conv\.kernel", "blocks.{stage}.res_blocks.{2}.branch2.conv_{3}.weight"),
    (_S_B + r"\.([abc])\.bn\.(\w+)", "blocks.{stage}.res_blocks.{2}.branch2.norm_{3}.{leaf}"),
    (_S_B + r"\.shortcut\.conv\.kernel", "blocks.{stage}.res_blocks.{2}.branch1_conv.weight"),
    (_S_B + r"\.shortcut\.bn\.(\w+)", "blocks.{stage}.res_blocks.{2}.branch1_norm.{leaf}"),
]
_SLOWFAST_SLOW = [
    (r"stem\.conv\.kernel", "s1.pathway0_stem.conv.weight"),
    (r"stem\.bn\.(\w+)", "s1.pathway0_stem.bn.{leaf}"),
    (_S_B + r"\.([abc])\.conv\.kernel", "s{stage}.pathway0_res{2}.branch2.{3}.weight"),
    (_S_B + r"\.([abc])\.bn\.(\w+)", "s{stage}.pathway0_res{2}.branch2.{3}_bn.{leaf}"),
    (_S_B + r"\.shortcut\.conv\.kernel", "s{stage}.pathway0_res{2}.branch1.weight"),
    (_S_B + r"\.shortcut\.bn\.(\w+)", "s{stage}.pathway0_res{2}.branch1_bn.{leaf}"),
]


def _videomae_rules(prefix: str, final_norm: str) -> list[tuple[str, str]]:
  return [
      (r"patch_embed\.(kernel|bias)", prefix + "patch_embed.proj.{leaf}"),
      (r"blocks\.(\d+)\.(norm[12])\.(scale|bias)", prefix + "blocks.{1}.{2}.{leaf}"),
      (r"blocks\.(\d+)\.attn\.qkv_kernel", prefix + "blocks.{1}.attn.qkv.weight"),
      (r"blocks\.(\d+)\.attn\.([qv]_bias)", prefix + "blocks.{1}.attn.{2}"),
      (r"blocks\.(\d+)\.attn\.proj_(kernel|bias)", prefix + "blocks.{1}.attn.proj.{leaf}"),
      (r"blocks\.(\d+)\.mlp\.(fc[12])_(kernel|bias)", prefix + "blocks.{1}.mlp.{2}.{leaf}"),
      (r"norm\.(scale|bias)", prefix + ("fc_norm" if final_norm == "pooled" else "norm")
       + ".{leaf}"),
  ]


_COCLR_S3D = [
    (r"(Conv_1a|Conv_2c)\.(conv[12])\.kernel", "{1}.{2}.weight"),
    (r"(Conv_1a|Conv_2c)\.(bn[12])\.(\w+)", "{1}.{2}.{leaf}"),
    (r"Conv_2b\.(conv|bn)\.(\w+)", "Conv_2b.{1}.{leaf}"),
    (r"(Mixed_\w+)\.branch0\.(conv|bn)\.(\w+)", "{1}.branch0.0.{2}.{leaf}"),
    (r"(Mixed_\w+)\.branch([12])_reduce\.(conv|bn)\.(\w+)", "{1}.branch{2}.0.{3}.{leaf}"),
    (r"(Mixed_\w+)\.branch([12])_conv\.(conv[12]|bn[12])\.(\w+)",
     "{1}.branch{2}.1.{3}.{leaf}"),
    (r"(Mixed_\w+)\.branch3\.(conv|bn)\.(\w+)", "{1}.branch3.1.{2}.{leaf}"),
    (r"(Mixed_\w+)\.gates\.(\d)\.fc\.(kernel|bias)", "{1}.gating_b{2}.fc.{leaf}"),
]


def _coclr_layout(keys: set[str]) -> Layout:
  """CoCLR's S3D, found under whatever prefix the saved model put it (query encoder first)."""
  prefixes = sorted(k[:-len("Conv_1a.conv1.weight")] for k in keys
                    if k.endswith("Conv_1a.conv1.weight"))
  if not prefixes:
    raise CheckpointMismatchError(
        f"s3d: no CoCLR S3D (…Conv_1a.conv1.weight) in the state dict; first keys: "
        f"{sorted(keys)[:8]}")
  prefix = "encoder_q.0." if "encoder_q.0." in prefixes else prefixes[0]
  rules = [(pattern, prefix + template) for pattern, template in _COCLR_S3D]
  # Everything outside the chosen encoder (key encoder, heads, queues), and torch's
  # aliases of the same modules (block1 = Sequential(Conv_1a), ...).
  ignored = (r".*num_batches_tracked$", rf"(?!{re.escape(prefix)}).*",
             re.escape(prefix) + r"block\d\..*")
  return Layout("coclr" + (f"[{prefix[:-1]}]" if prefix else ""), rules, ignored=ignored)


def detect_layout(arch: str, keys: set[str]) -> Layout:
  """The layout of a state dict for ``arch`` (errors say what was looked for)."""
  if arch in ("r3d_18", "mc3_18", "r2plus1d_18"):
    return Layout("torchvision", _TORCHVISION, ignored=(r".*num_batches_tracked$", r"fc\..*"))
  if arch == "slow_r50":
    if "blocks.0.conv.weight" in keys:
      return Layout("pytorchvideo", _PYTORCHVIDEO_SLOW,
                    ignored=(r".*num_batches_tracked$", r"blocks\.5\..*"))
    if "s1.pathway0_stem.conv.weight" in keys:
      return Layout("slowfast", _SLOWFAST_SLOW, stage_offset=2,
                    ignored=(r".*num_batches_tracked$", r"head\..*"))
    raise CheckpointMismatchError(
        "slow_r50: neither a pytorchvideo (blocks.0.conv.weight) nor a SlowFast "
        f"(s1.pathway0_stem.conv.weight) state dict; first keys: {sorted(keys)[:8]}")
  if arch in ("vit3d_b16", "vit3d_s16"):
    prefix = "encoder." if "encoder.patch_embed.proj.weight" in keys else ""
    final_norm = "pooled" if prefix + "fc_norm.weight" in keys else "tokens"
    ignored = (r"head\..*", r"decoder\..*", r"encoder_to_decoder\..*", r"mask_token",
               r"(encoder\.)?head\..*", r"(encoder\.)?pos_embed")
    return Layout("videomae_pretrain" if prefix else "videomae",
                  _videomae_rules(prefix, final_norm), ignored=ignored,
                  overrides={"final_norm": final_norm})
  if arch in ("s3d", "s3dg"):
    if any(re.fullmatch(r"features\.\d+\..*", k) for k in keys):
      raise CheckpointMismatchError(
          f"{arch}: this is torchvision's s3d layout (features.N...), which import-checkpoint "
          "refuses: torchvision's S3D normalises with BatchNorm eps=1e-3, ssvbench's s3d "
          "follows CoCLR's (torch's default eps=1e-5), so its weights would run with "
          "different activations than they were trained with. Use a CoCLR S3D checkpoint.")
    return _coclr_layout(keys)
  raise ValueError(f"import-checkpoint: unknown --arch {arch!r}; valid: {', '.join(ARCHES)}")


def _to_target(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """torch layout -> ssvbench layout, chosen by the target's rank."""
  if len(shape) == 5 and array.ndim == 5:  # Conv [O, I, kt, kh, kw] -> [kt, kh, kw, I, O].
    return array.transpose(2, 3, 4, 1, 0)
  if len(shape) == 3 and array.ndim == 2:  # Fused qkv [3D, D] -> [D, 3, D].
    return array.T.reshape(array.shape[1], 3, array.shape[0] // 3)
  if len(shape) == 2 and array.ndim == 2:  # Linear [out, in] -> [in, out].
    return array.T
  return array


def _split_full_qkv_bias(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """timm/MAE-ST's full qkv bias -> VideoMAE's q_bias and v_bias (the k part cancels)."""
  state = dict(state)
  for key in [k for k in state if k.endswith("attn.qkv.bias")]:
    q_key, v_key = key.replace("qkv.bias", "q_bias"), key.replace("qkv.bias", "v_bias")
    if q_key not in state and v_key not in state:
      q_bias, _, v_bias = np.split(state.pop(key), 3)
      state[q_key], state[v_key] = q_bias, v_bias
  return state


def _listing(title: str, entries: list[str], limit: int = 25) -> str:
  shown = "\n    ".join(entries[:limit])
  more = f"\n    ... and {len(entries) - limit} more" if len(entries) > limit else ""
  return f"  {title} ({len(entries)}):\n    {shown}{more}"


def convert_state_dict(arch: str, state: dict[str, np.ndarray],
                       target_shapes: Callable[[dict], dict[tuple, tuple[int, ...]]],
                       source_name: str = "checkpoint"):
  """Maps a PyTorch state dict onto the flat state of an ssvbench backbone.

  Args:
    arch: one of ARCHES.
    state: source name -> array.
    target_shapes: overrides -> {backbone state path: shape} (params and batch stats).
    source_name: the file, for error messages.

  Returns:
    (arrays {path: float32 array}, overrides, layout name, ignored source keys).

  Raises:
    CheckpointMismatchError: listing every missing, unexpected and mis-shaped key.
  """
  state = _split_full_qkv_bias(state)
  layout = detect_layout(arch, set(state))
  shapes = target_shapes(dict(layout.overrides))
  arrays, missing, misshaped, used = {}, [], [], set()
  for path, shape in sorted(shapes.items(), key=lambda kv: [str(p) for p in kv[0]]):
    dotted = ".".join(str(p) for p in path)
    key = layout.source_key(dotted)
    if key is None:
      raise AssertionError(f"{layout.name}: no rule names ssvbench parameter {dotted}")
    if key not in state:
      missing.append(f"{key} (for {dotted} {tuple(shape)})")
      continue
    used.add(key)
    converted = _to_target(state[key], tuple(shape))
    if tuple(converted.shape) != tuple(shape):
      misshaped.append(f"{key}: shape {tuple(state[key].shape)} does not give {dotted} "
                       f"{tuple(shape)}")
      continue
    arrays[path] = np.asarray(converted, np.float32)
  ignored = sorted(k for k in set(state) - used
                   if any(re.fullmatch(p, k) for p in layout.ignored))
  unexpected = sorted(set(state) - used - set(ignored))
  if missing or unexpected or misshaped:
    parts = [f"{source_name} does not fit --arch {arch} ({layout.name} layout):"]
    for title, entries in (("missing keys", missing), ("unexpected keys", unexpected),
                           ("mis-shaped keys", misshaped)):
      if entries:
        parts.append(_listing(title, entries))
    raise CheckpointMismatchError("\n".join(parts))
  return arrays, dict(layout.overrides), layout.name, ignored


# ----------------------------------------------------------------------------- runs


def backbone_target_shapes(arch: str):
  """A ``target_shapes`` function for ``convert_state_dict`` built from the registry."""
  from flax import nnx
  from ssvbench.models.registry import build_backbone

  def shapes(overrides):
    model = nnx.eval_shape(lambda: build_backbone(arch, rngs=nnx.Rngs(0), **overrides))
    return {tuple(path): tuple(v.shape) for path, v in nnx.to_flat_state(nnx.state(model))}
  return shapes
