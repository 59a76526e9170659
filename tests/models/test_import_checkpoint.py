"""import-checkpoint without PyTorch: safetensors reading, key mapping, error listings, and
the CLI writing a workdir that load_trained_model restores.

The state dicts here are written from torchvision's / VideoMAE's module layouts (names
and shapes as their ``state_dict()`` gives them), with random values. Numerical parity
with the real PyTorch modules is tests/parity (run with ``--parity``).
"""

import json

import numpy as np
import pytest
from flax import nnx

from ssvbench import runs
from ssvbench import cli
from ssvbench.models import import_torch
from ssvbench.train import trainer


def _bn(prefix, channels, rng):
  return {f"{prefix}.weight": rng.standard_normal(channels).astype(np.float32),
          f"{prefix}.bias": rng.standard_normal(channels).astype(np.float32),
          f"{prefix}.running_mean": rng.standard_normal(channels).astype(np.float32),
          f"{prefix}.running_var": rng.uniform(0.5, 2, channels).astype(np.float32),
          f"{prefix}.num_batches_tracked": np.array(7, np.int64)}


def torchvision_mc3_18(seed=0):
  """torchvision.models.video.mc3_18().state_dict() shapes: Conv3DSimple in layer1,
  Conv3DNoTemporal (1x3x3) in layer2-4, BasicBlock x2, 1x1x1 downsample, fc 512->400."""
  rng = np.random.default_rng(seed)
  conv = lambda *shape: (0.05 * rng.standard_normal(shape)).astype(np.float32)
  state = {"stem.0.weight": conv(64, 3, 3, 7, 7), **_bn("stem.1", 64, rng)}
  in_planes = 64
  for layer, planes in enumerate((64, 128, 256, 512), start=1):
    kt = 3 if layer == 1 else 1
    for block in (0, 1):
      prefix = f"layer{layer}.{block}"
      state[f"{prefix}.conv1.0.weight"] = conv(planes, in_planes, kt, 3, 3)
      state.update(_bn(f"{prefix}.conv1.1", planes, rng))
      state[f"{prefix}.conv2.0.weight"] = conv(planes, planes, kt, 3, 3)
      state.update(_bn(f"{prefix}.conv2.1", planes, rng))
      if layer > 1 and block == 0:
        state[f"{prefix}.downsample.0.weight"] = conv(planes, in_planes, 1, 1, 1)
        state.update(_bn(f"{prefix}.downsample.1", planes, rng))
      in_planes = planes
  state["fc.weight"], state["fc.bias"] = conv(400, 512), conv(400)
  return state


def test_safetensors_round_trip_and_bfloat16(tmp_path):
  arrays = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.array([1, -2], np.int64)}
  import_torch.write_safetensors(arrays, tmp_path / "x.safetensors")
  read = import_torch.read_safetensors(tmp_path / "x.safetensors")
  assert sorted(read) == ["a.weight", "b"]
  np.testing.assert_array_equal(read["a.weight"], arrays["a.weight"])
  np.testing.assert_array_equal(read["b"], arrays["b"])
  # bfloat16 written by hand: the top 16 bits of float32 1.5 and -2.0.
  values = np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16
  header = json.dumps({"h": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                       "__metadata__": {"format": "pt"}}).encode()
  (tmp_path / "bf16.safetensors").write_bytes(
      len(header).to_bytes(8, "little") + header + values.astype("<u2").tobytes())
  np.testing.assert_array_equal(
      import_torch.read_safetensors(tmp_path / "bf16.safetensors")["h"], [1.5, -2.0])


def test_mismatches_list_missing_unexpected_and_misshaped_keys():
  state = torchvision_mc3_18()
  del state["layer2.0.conv1.1.running_var"]
  state["layer9.weight"] = np.zeros(3, np.float32)
  state["layer3.1.conv2.0.weight"] = state["layer3.1.conv2.0.weight"][:, :, :, :2]
  with pytest.raises(import_torch.CheckpointMismatchError) as error:
    import_torch.convert_state_dict("mc3_18", state,
                                    import_torch.backbone_target_shapes("mc3_18"), "x.pth")
  message = str(error.value)
  assert "x.pth does not fit --arch mc3_18 (torchvision layout)" in message
  assert "missing keys (1):\n    layer2.0.conv1.1.running_var" in message
  assert "unexpected keys (1):\n    layer9.weight" in message
  assert ("mis-shaped keys (1):\n    layer3.1.conv2.0.weight: shape (256, 256, 1, 2, 3)"
          in message)
  # The wrong architecture fails with every key accounted for, not a KeyError.
  with pytest.raises(import_torch.CheckpointMismatchError,
                     match=r"mis-shaped keys \(12\):\n    layer2.0.conv1.0.weight: shape "
                           r"\(128, 64, 1, 3, 3\) does not give stages.1.0.conv1.conv.kernel"):
    import_torch.convert_state_dict("r3d_18", torchvision_mc3_18(),
                                    import_torch.backbone_target_shapes("r3d_18"))
  with pytest.raises(import_torch.CheckpointMismatchError,
                     match=r"(?s)missing keys \(101\):\n    layer1.0.conv1.0.1.bias.*"
                           r"unexpected keys \(16\):\n    layer1.0.conv1.0.weight"):
    import_torch.convert_state_dict("r2plus1d_18", torchvision_mc3_18(),
                                    import_torch.backbone_target_shapes("r2plus1d_18"))
  with pytest.raises(import_torch.CheckpointMismatchError, match="neither a pytorchvideo"):
    import_torch.convert_state_dict("slow_r50", torchvision_mc3_18(),
                                    import_torch.backbone_target_shapes("slow_r50"))


def test_videomae_keys_map_onto_the_vit():
  """VideoMAE names on a small ViT (the same converter as ViT-B, a cheaper target)."""
  rng = np.random.default_rng(0)
  width, hidden = 64, 256
  f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
  state = {"encoder.patch_embed.proj.weight": f(width, 3, 2, 8, 8),
           "encoder.patch_embed.proj.bias": f(width),
           "encoder.norm.weight": f(width), "encoder.norm.bias": f(width),
           "decoder.blocks.0.mlp.fc1.weight": f(8, 8), "mask_token": f(1, 1, 8),
           "encoder_to_decoder.weight": f(8, width)}
  for i in range(4):
    p = f"encoder.blocks.{i}."
    state.update({p + "norm1.weight": f(width), p + "norm1.bias": f(width),
                  p + "attn.qkv.weight": f(3 * width, width),
                  p + "attn.qkv.bias": f(3 * width),  # timm-style full bias.
                  p + "attn.proj.weight": f(width, width), p + "attn.proj.bias": f(width),
                  p + "norm2.weight": f(width), p + "norm2.bias": f(width),
                  p + "mlp.fc1.weight": f(hidden, width), p + "mlp.fc1.bias": f(hidden),
                  p + "mlp.fc2.weight": f(width, hidden), p + "mlp.fc2.bias": f(width)})
  arrays, overrides, layout, ignored = import_torch.convert_state_dict(
      "vit3d_s16", state, import_torch.backbone_target_shapes("vit3d_tiny"))
  assert layout == "videomae_pretrain" and overrides == {"final_norm": "tokens"}
  assert ignored == ["decoder.blocks.0.mlp.fc1.weight", "encoder_to_decoder.weight",
                     "mask_token"]
  qkv = state["encoder.blocks.2.attn.qkv.weight"]
  for index in range(3):  # q, k, v kernels: [in, out] = torch rows index*D.. transposed.
    np.testing.assert_array_equal(arrays[("blocks", 2, "attn", "qkv_kernel")][:, index],
                                  qkv[index * width:(index + 1) * width].T)
  np.testing.assert_array_equal(arrays[("blocks", 2, "attn", "v_bias")],
                                state["encoder.blocks.2.attn.qkv.bias"][2 * width:])
  np.testing.assert_array_equal(arrays[("patch_embed", "kernel")][1, 3, 5, 2, 7],
                                state["encoder.patch_embed.proj.weight"][7, 2, 1, 3, 5])
  np.testing.assert_array_equal(arrays[("norm", "scale")], state["encoder.norm.weight"])
  np.testing.assert_array_equal(arrays[("blocks", 0, "mlp", "fc1_kernel")],
                                state["encoder.blocks.0.mlp.fc1.weight"].T)


@pytest.mark.slow
def test_cli_writes_a_run_that_load_trained_model_restores(tiny_store, tmp_path, capsys):
  state = torchvision_mc3_18(seed=3)
  import_torch.write_safetensors(state, tmp_path / "mc3.safetensors")
  out = tmp_path / "imported"
  argv = ["import-checkpoint", "--arch", "mc3_18", "--from", str(tmp_path / "mc3.safetensors"),
          "--out", str(out), "--store", str(tiny_store)]
  assert cli.main(argv) == 0
  summary = json.loads(capsys.readouterr().out)
  assert summary["layout"] == "torchvision" and summary["converted_tensors"] == 5 + 8 * 10 + 3 * 5
  assert summary["ignored_keys"][:2] == ["fc.bias", "fc.weight"]
  config, model, step = runs.load_trained_model(out)
  assert step == 0 and config.method.name == "random_init"
  assert config.model.backbone == "mc3_18" and config.imported_checkpoint.layout == "torchvision"
  backbone = model.backbone
  np.testing.assert_array_equal(np.asarray(backbone.stem.conv.kernel[...]),
                                state["stem.0.weight"].transpose(2, 3, 4, 1, 0))
  block = backbone.stages[2][0]
  np.testing.assert_array_equal(np.asarray(block.downsample.bn.var[...]),
                                state["layer3.0.downsample.1.running_var"])
  np.testing.assert_array_equal(np.asarray(block.bn2.scale[...]),
                                state["layer3.0.conv2.1.weight"])
  np.testing.assert_array_equal(np.asarray(block.conv1.conv.kernel[...])[0, 1, 2],
                                state["layer3.0.conv1.0.weight"][:, :, 0, 1, 2].T)
  assert len(nnx.state(backbone, nnx.BatchStat)) > 0
  # A second import into the same workdir is refused; a bad file is a clear error.
  assert cli.main(argv) == 2
  assert "already holds a run" in capsys.readouterr().err
  (tmp_path / "bad.safetensors").write_bytes(b"\x04\x00\x00\x00\x00\x00\x00\x00nope")
  assert cli.main(argv[:4] + [str(tmp_path / "bad.safetensors"), "--out",
                              str(tmp_path / "x"), "--store", str(tiny_store)]) == 2
  assert "not a readable safetensors file" in capsys.readouterr().err
  # --store is optional: the run then records no data, and evaluation must name it.
  bare = tmp_path / "bare"
  assert cli.main(argv[:5] + ["--out", str(bare)]) == 0
  capsys.readouterr()
  config, model, step = runs.load_trained_model(bare)
  assert step == 0 and config.data.store_dir == ""
  assert cli.main(["evaluate", "--workdir", str(bare), "--protocol", "synthactions",
                   "--no-progress"]) == 2
  assert "records no dataset" in capsys.readouterr().err
