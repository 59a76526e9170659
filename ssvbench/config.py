"""Config files and command-line overrides.

Configs are Python files exposing `get_config(arg=None)` that return an
`ml_collections.ConfigDict` (the big_vision convention): `arg` selects typed variants
such as `runlocal`, which shrinks a recipe to CPU size. On the command line a config is
named as `--config path/to/file.py[:arg]` and its fields are overridden with
`--config.a.b=value`.

We parse overrides ourselves instead of through absl's config_flags so that an unknown
key fails with the closest valid keys named, and so that the CLI does not need absl
flags (which are global and awkward inside tests).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import json
import pathlib
import sys
import traceback
from typing import Any, Iterable

import ml_collections

# The config files shipped inside the package (protocols/, pretrain/, quickstart.py,
# synthactions.py), so that an installed wheel finds them too.
PACKAGE_CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"
# The old name (configs/ used to sit next to the package in the repository).
REPO_CONFIG_DIR = PACKAGE_CONFIG_DIR


class ConfigError(ValueError):
  """A config file, key or value that cannot be used; the message says what was expected."""


def available_configs(folder: str) -> list[str]:
  """Names of the config files shipped in PACKAGE_CONFIG_DIR/folder (no ssvbench import
  beyond this module, so `--help` can list them at once)."""
  return sorted(p.stem for p in (PACKAGE_CONFIG_DIR / folder).glob("*.py")
                if not p.stem.startswith("_"))


def available_recipes() -> list[str]:
  """Names of the shipped pre-training recipes (`--config NAME[:arg]`)."""
  return available_configs("pretrain")


def resolve_config_path(path: str) -> pathlib.Path:
  """Finds a config file given as a path, a path under the shipped configs, or a recipe name.

  `configs/pretrain/x.py`, `pretrain/x.py` and `x` all name the shipped recipe x, from a
  checkout or from an installed wheel; an existing file in the current directory wins.
  """
  candidate = pathlib.Path(path)
  if candidate.is_file():
    return candidate
  for base in (PACKAGE_CONFIG_DIR, PACKAGE_CONFIG_DIR.parent):
    if (base / path).is_file():
      return base / path
  if candidate.suffix == "" and path in available_recipes():
    return PACKAGE_CONFIG_DIR / "pretrain" / f"{path}.py"
  raise ConfigError(f"config file not found: {path!r} (looked in the current directory and "
                    f"among the shipped configs; shipped recipes: "
                    f"{', '.join(available_recipes())}).")


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path.py[:arg]` by calling the file's `get_config(arg)`.

  Args:
    spec: a config path, optionally followed by `:arg` (e.g. `configs/quickstart.py:runlocal`).

  Returns:
    The config, unlocked so that overrides may be applied, then locked again by callers.
  """
  path, _, arg = spec.partition(":")
  file = resolve_config_path(path)
  module_name = "ssvbench_config_" + file.stem
  module_spec = importlib.util.spec_from_file_location(module_name, file)
  if module_spec is None or module_spec.loader is None:
    raise ConfigError(f"cannot import config file {file}.")
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[module_name] = module
  with _config_file_errors(file):
    module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {file} has no get_config(arg=None) function.")
  with _config_file_errors(file):
    config = module.get_config(arg or None) if arg else module.get_config()
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{file}: get_config() must return an ml_collections.ConfigDict, "
                      f"got {type(config).__name__}.")
  return config


@contextlib.contextmanager
def _config_file_errors(file: pathlib.Path):
  """Turns an exception raised while importing or calling a config file into one line
  naming the file and the line of it that failed (a syntax error, or a config that
  raises, e.g. for an unknown variant)."""
  try:
    yield
  except ConfigError:
    raise
  except SyntaxError as error:
    raise ConfigError(f"{file}:{error.lineno}: syntax error: {error.msg}.") from None
  except Exception as error:  # noqa: BLE001 -- any failure of user code becomes one line.
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if pathlib.Path(f.filename).resolve() == file.resolve()]
    where = f"{file}:{frames[-1].lineno}" if frames else str(file)
    message = " ".join(str(error).split())
    raise ConfigError(f"{where}: {type(error).__name__}: {message}") from None


def flatten_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Lists every leaf key of a config as dotted paths."""
  keys = []
  for key, value in config.items():
    dotted = f"{prefix}{key}"
    if isinstance(value, ml_collections.ConfigDict) and len(value):
      keys.extend(flatten_keys(value, dotted + "."))
    else:
      keys.append(dotted)
  return keys


def _parse_value(raw: str, current: Any, key: str) -> Any:
  """Converts an override string to the type of the value it replaces."""
  if isinstance(current, bool):
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ConfigError(f"--config.{key}={raw}: expected a boolean (true/false).")
  if isinstance(current, str):
    return raw
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    if current is None:
      return raw
    raise ConfigError(f"--config.{key}={raw}: expected a {type(current).__name__} "
                      f"like {current!r}.") from None
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if current is not None and not isinstance(value, type(current)):
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
      return type(current)(value)
    raise ConfigError(f"--config.{key}={raw}: expected a {type(current).__name__} "
                      f"like {current!r}, got {type(value).__name__}.")
  return value


def closest_keys(config: ml_collections.ConfigDict, key: str, n: int = 3) -> list[str]:
  """The valid keys nearest to a misspelt one, for error messages."""
  return closest_keys_in(flatten_keys(config), key, n)


def closest_keys_in(keys: list[str], key: str, n: int = 3) -> list[str]:
  """The keys of `keys` nearest to a misspelt `key`."""
  close = difflib.get_close_matches(key, keys, n=n, cutoff=0.4)
  if not close:
    leaf = key.rsplit(".", 1)[-1]
    close = [k for k in keys if leaf in k][:n]
  return close


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Iterable[tuple[str, str]]) -> ml_collections.ConfigDict:
  """Applies `(dotted_key, raw_value)` overrides in place.

  Raises:
    ConfigError: for a key that is not in the config (naming the closest valid keys) or a
      value that does not parse as the type of the value it replaces.
  """
  for key, raw in overrides:
    node = config
    parts = key.split(".")
    for i, part in enumerate(parts):
      is_leaf = i == len(parts) - 1
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        suggestion = closest_keys(config, key)
        hint = f" Did you mean: {', '.join(suggestion)}?" if suggestion else ""
        raise ConfigError(f"unknown config key {key!r}.{hint} "
                          f"Valid keys: {', '.join(flatten_keys(config))}.")
      if is_leaf:
        with config.unlocked():
          node[part] = _parse_value(raw, node[part], key)
      else:
        node = node[part]
  return config


def split_config_args(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """Separates `--config.key=value` overrides from the other arguments."""
  rest, overrides = [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      body = arg[len("--config."):]
      if "=" in body:
        key, _, value = body.partition("=")
      elif i + 1 < len(argv):
        key, value = body, argv[i + 1]
        i += 1
      else:
        raise ConfigError(f"{arg}: expected --config.key=value.")
      overrides.append((key, value))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def to_json(config: ml_collections.ConfigDict) -> str:
  """The canonical JSON of a config (sorted keys), as written to `<workdir>/config.json`."""
  return json.dumps(config.to_dict(), sort_keys=True, indent=2, default=str)
