"""torchvision's video ResNets with random weights == their converted ssvbench backbones.

The reference is the real torchvision code (``pip install torch==2.14.1
torchvision==0.29.1``): each model is built with random weights and random BatchNorm
statistics, its state dict converted by ``import_torch`` (the CLI's path), and the
pooled 512-d features of the same clips compared in eval mode within 1e-4. One model
also goes through the whole CLI: .pth file -> import-checkpoint -> evaluate.
"""

import json

import jax
import numpy as np
import pytest
import torch
import torchvision
from flax import nnx

from ssvbench import runs
from ssvbench import cli
from ssvbench.train import trainer

from .conftest import randomize_batch_norms, torch_state_dict


def _reference(arch: str, seed: int):
  torch.manual_seed(seed)
  model = getattr(torchvision.models.video, arch)(weights=None)
  randomize_batch_norms(model, seed)
  model.eval()
  state = torch_state_dict(model)
  model.fc = torch.nn.Identity()  # The backbone's pooled features.
  return model, state


def _clips(seed: int, shape=(2, 8, 32, 32)) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(shape + (3,)).astype(np.float32)


def _torch_features(model, clips: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()).numpy()


@pytest.mark.parametrize("arch", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_converted_torchvision_model_gives_the_same_features(arch, flax_features):
  model, state = _reference(arch, seed=1)
  clips = _clips(2)
  expected = _torch_features(model, clips)
  got = flax_features(arch, state, clips, expected_layout="torchvision")
  assert got.shape == expected.shape == (2, 512)
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_import_checkpoint_cli_then_evaluate(tiny_store, tmp_path, capsys):
  torch.manual_seed(4)
  model = torchvision.models.video.mc3_18(weights=None)
  randomize_batch_norms(model, 4)
  model.eval()
  # As published checkpoints are: a container with the classifier included.
  torch.save({"epoch": 3, "state_dict": model.state_dict()}, tmp_path / "mc3.pth")
  model.fc = torch.nn.Identity()
  out = tmp_path / "imported"
  assert cli.main(["import-checkpoint", "--arch", "mc3_18", "--from", str(tmp_path / "mc3.pth"),
                   "--out", str(out), "--store", str(tiny_store)]) == 0
  summary = json.loads(capsys.readouterr().out)
  assert "fc.weight" in summary["ignored_keys"]
  _, restored, step = runs.load_trained_model(out)
  assert step == 0
  graphdef, state = nnx.split(restored.backbone)
  clips = _clips(5)
  got = np.asarray(jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, clips))
  np.testing.assert_allclose(got, _torch_features(model, clips), atol=1e-4, rtol=1e-4)
  assert cli.main(["evaluate", "--workdir", str(out), "--protocol", "synthactions",
                   "--no-progress"]) == 0
  metrics = json.loads(capsys.readouterr().out)
  assert any(name.startswith("knn") for name in metrics)


def test_imported_r3d_18_on_raw_clips_matches_torchvision_preprocessing(tmp_path, capsys):
  """Raw uint8 clips through each side with its own normalisation: the imported run's
  (recorded by import-checkpoint from the source architecture) and torchvision's own
  (the published weights' transforms: pixels to [0, 1], Kinetics mean/std)."""
  from ssvbench.methods import base as methods_base
  torch.manual_seed(6)
  model = torchvision.models.video.r3d_18(weights=None)
  randomize_batch_norms(model, 6)
  model.eval()
  torch.save(model.state_dict(), tmp_path / "r3d.pth")
  model.fc = torch.nn.Identity()
  out = tmp_path / "imported"
  assert cli.main(["import-checkpoint", "--arch", "r3d_18", "--from", str(tmp_path / "r3d.pth"),
                   "--out", str(out)]) == 0
  summary = json.loads(capsys.readouterr().out)
  preprocess = torchvision.models.video.R3D_18_Weights.KINETICS400_V1.transforms()
  assert summary["input_norm"]["mean"] == pytest.approx(list(preprocess.mean))
  assert summary["input_norm"]["std"] == pytest.approx(list(preprocess.std))
  config = json.loads((out / "config.json").read_text())
  assert config["model"]["input_norm"] == summary["input_norm"]

  raw = np.random.default_rng(7).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
  with torch.no_grad():
    x = torch.from_numpy(raw).permute(0, 1, 4, 2, 3).float() / 255.0  # [B, T, C, H, W]
    x = torchvision.transforms.functional.normalize(x, preprocess.mean, preprocess.std)
    expected = model(x.permute(0, 2, 1, 3, 4).contiguous()).numpy()
  _, restored, _ = runs.load_trained_model(out)
  graphdef, state = nnx.split(restored.backbone)
  encode = jax.jit(lambda s, c: methods_base.encode_views(nnx.merge(graphdef, s), c))
  got = np.asarray(encode(state, raw[:, None]))[:, 0]
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
  # ssvbench's own convention would feed these weights shifted inputs: visibly different.
  restored.backbone.input_norm = methods_base.input_norm_lib.SSVBENCH
  graphdef, state = nnx.split(restored.backbone)
  shifted = np.asarray(jax.jit(lambda s, c: methods_base.encode_views(
      nnx.merge(graphdef, s), c))(state, raw[:, None]))[:, 0]
  assert np.abs(shifted - expected).max() > 100 * np.abs(got - expected).max()
