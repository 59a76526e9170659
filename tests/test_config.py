"""Config loading and --config.key=value overrides."""

import pytest

from ssvbench import config as config_lib
from ssvbench import recipes


def test_load_with_arg_and_override():
  config = config_lib.load_config("configs/pretrain/simclr_r3d_synthactions.py:runlocal")
  assert config.model.backbone == "r3d_tiny"
  rest, overrides = config_lib.split_config_args(
      ["--workdir", "x", "--config.train.num_steps=7", "--config.optim.lr", "0.5",
       "--config.data.augment.enabled=false"])
  assert rest == ["--workdir", "x"]
  config_lib.apply_overrides(config, overrides)
  assert config.train.num_steps == 7
  assert config.optim.lr == 0.5
  assert config.data.augment.enabled is False


def test_unknown_key_names_closest_keys():
  config = recipes.synthactions_pretrain("simclr")
  with pytest.raises(config_lib.ConfigError) as excinfo:
    config_lib.apply_overrides(config, [("train.num_step", "3")])
  message = str(excinfo.value)
  assert "unknown config key 'train.num_step'" in message
  assert "Did you mean: train.num_steps" in message


def test_bad_value_type_is_explained():
  config = recipes.synthactions_pretrain("simclr")
  with pytest.raises(config_lib.ConfigError, match="expected a int"):
    config_lib.apply_overrides(config, [("train.batch_size", "big")])


def test_missing_config_file():
  with pytest.raises(config_lib.ConfigError, match="config file not found"):
    config_lib.load_config("configs/nope.py")
