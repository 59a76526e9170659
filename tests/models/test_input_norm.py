"""Input normalisation travels with the model: recorded in configs, read by every encoder."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from ssvbench import cli, config as config_lib
from ssvbench.evaluators import extract
from ssvbench.methods import base as methods_base
from ssvbench.models import import_torch, input_norm
from ssvbench.models.registry import build_backbone
from ssvbench.train import trainer

from test_import_checkpoint import torchvision_mc3_18


def test_default_normalisation_is_the_former_constant_to_the_bit():
  clips = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 5, 3), dtype=np.uint8)

  @jax.jit
  def former(clips):  # The code before normalisation became part of the model.
    x = clips.astype(jnp.float32) / 255.0
    return (x - jnp.asarray((0.45, 0.45, 0.45))) / jnp.asarray((0.225, 0.225, 0.225))

  np.testing.assert_array_equal(np.asarray(jax.jit(methods_base.normalize_clips)(clips)),
                                np.asarray(former(clips)))
  assert build_backbone("r3d_tiny", rngs=nnx.Rngs(0)).input_norm == input_norm.SSVBENCH
  for name in config_lib.available_recipes():  # Every shipped recipe records it.
    for arg in (None, "runlocal"):
      try:
        config = config_lib.load_config(f"{name}:{arg}" if arg else name)
      except ValueError:
        continue  # A recipe without that variant.
      assert input_norm.from_config(config.model.input_norm) == input_norm.SSVBENCH, name


def test_encoders_use_the_backbones_own_normalisation():
  config = config_lib.load_config("simclr_r3d_synthactions:runlocal")
  config.model.input_norm = dict(mean=[0.43216, 0.394666, 0.37645],
                                 std=[0.22803, 0.22145, 0.216989])
  _, model = trainer.build_model(config, num_classes=4)
  backbone = model.backbone
  assert backbone.input_norm == input_norm.TORCHVISION_KINETICS
  backbone.eval()
  clips = np.random.default_rng(1).integers(0, 256, (2, 1, 8, 16, 16, 3), dtype=np.uint8)
  manual = (clips[:, 0].astype(np.float32) / 255 - np.float32(input_norm.TORCHVISION_KINETICS.mean)
            ) / np.float32(input_norm.TORCHVISION_KINETICS.std)
  np.testing.assert_allclose(np.asarray(methods_base.encode_views(backbone, clips))[:, 0],
                             np.asarray(backbone(jnp.asarray(manual))), atol=1e-5, rtol=1e-5)
  kinetics = methods_base.encode_views(backbone, clips)
  backbone.input_norm = input_norm.SSVBENCH
  assert not np.allclose(np.asarray(methods_base.encode_views(backbone, clips)),
                         np.asarray(kinetics))
  # The feature cache tells the two apart; the default keeps its former key.
  views = dict(num_temporal_views=1, num_spatial_crops=1, num_frames=8, frame_stride=1,
               crop_size=16)
  former = extract.cache_key("w", "m", "test", views)
  assert extract.cache_key("w", "m", "test", views, input_norm.SSVBENCH) == former
  assert extract.cache_key("w", "m", "test", views, input_norm.TORCHVISION_KINETICS) != former


def test_import_checkpoint_records_the_sources_normalisation(tmp_path, capsys):
  import_torch.write_safetensors(torchvision_mc3_18(), tmp_path / "mc3.safetensors")
  base = ["import-checkpoint", "--arch", "mc3_18", "--from", str(tmp_path / "mc3.safetensors")]
  assert cli.main(base + ["--out", str(tmp_path / "a")]) == 0
  summary = json.loads(capsys.readouterr().out)
  assert input_norm.from_config(summary["input_norm"]) == input_norm.TORCHVISION_KINETICS
  config = ml_collections.ConfigDict(json.loads((tmp_path / "a/config.json").read_text()))
  _, model = trainer.build_model(config, num_classes=2)
  assert model.backbone.input_norm == input_norm.TORCHVISION_KINETICS
  # Overrides: by name, or by values.
  assert cli.main(base + ["--out", str(tmp_path / "b"), "--input-norm", "imagenet"]) == 0
  assert json.loads(capsys.readouterr().out)["input_norm"]["mean"] == [0.485, 0.456, 0.406]
  assert cli.main(base + ["--out", str(tmp_path / "c"), "--input-mean", "0.5", "0.5", "0.5",
                          "--input-std", "0.25", "0.25", "0.25"]) == 0
  assert json.loads(capsys.readouterr().out)["input_norm"]["std"] == [0.25, 0.25, 0.25]
  assert cli.main(base + ["--out", str(tmp_path / "d"), "--input-mean", "0.5", "0.5",
                          "0.5"]) == 2
  assert "--input-mean and --input-std go together" in capsys.readouterr().err
  assert not (tmp_path / "d").exists()
  assert import_torch.SOURCE_INPUT_NORM["s3d"] == input_norm.IMAGENET  # CoCLR.


def test_torchvision_s3d_layout_is_refused_by_name():
  keys = {"features.0.0.0.weight", "features.0.0.1.weight", "classifier.1.weight"}
  with pytest.raises(import_torch.CheckpointMismatchError,
                     match="torchvision's s3d layout.*BatchNorm eps=1e-3"):
    import_torch.detect_layout("s3d", keys)


def test_bad_normalisations_are_refused():
  with pytest.raises(ValueError, match="3 values"):
    input_norm.from_config(dict(mean=[0.5, 0.5], std=[0.2, 0.2, 0.2]))
  with pytest.raises(ValueError, match="positive"):
    input_norm.from_config(dict(mean=[0.5] * 3, std=[0.2, 0.0, 0.2]))
  with pytest.raises(ValueError, match="unknown input normalisation"):
    input_norm.from_config("kinetics")
