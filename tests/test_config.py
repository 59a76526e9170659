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


def test_a_misspelt_key_in_a_config_file_is_one_line_and_writes_nothing(tmp_path, capsys):
  from ssvbench import cli
  config_file = tmp_path / "typo.py"
  config_file.write_text(
      "from ssvbench import recipes\n"
      "def get_config(arg=None):\n"
      "  c = recipes.synthactions_pretrain('simclr', runlocal=True)\n"
      "  c.train.chekpoint_every = 50\n"
      "  return c\n")
  workdir = tmp_path / "run"
  code = cli.main(["pretrain", "--config", str(config_file), "--workdir", str(workdir)])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert "'train.chekpoint_every'" in err and "train.checkpoint_every" in err
  assert not workdir.exists()


def test_every_shipped_recipe_and_optional_key_passes_the_key_check():
  from ssvbench import config_keys, quickstart
  from ssvbench.methods import registry as methods_registry
  for name in config_lib.available_recipes():
    config_keys.check_pretrain_config(config_lib.load_config(name), name)
  quick = quickstart.default_config()
  for method in recipes.METHOD_DEFAULTS:
    config = quickstart.method_config(quick, method, "store")
    config.train.init_from = "runs/other"  # Optional keys and open sub-trees are accepted.
    config.data.augment.crop_scale = (0.5, 1.0)
    config_keys.check_pretrain_config(config, method)
    methods_registry.get_method(config.method)  # Every method builds from the quickstart's
    # config (the momentum schedules' end follows train.num_steps there too).
    if "momentum_steps" in config.method:
      config.train.num_steps = 123
      assert config.method.momentum_steps == 123
  config.method.temprature = 0.3
  with pytest.raises(config_lib.ConfigError, match="'method.temprature'.*method.temperature"):
    config_keys.check_pretrain_config(config, "x")

