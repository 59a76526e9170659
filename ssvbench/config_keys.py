"""The keys a pre-training config may hold, so that a misspelt key in a config *file* is
an error rather than a silently ignored setting.

Why: `--config.train.chekpoint_every=50` on the command line was already refused (the
key does not exist), but the same typo written in a config file simply added a new key,
and the run went on with the recipe's value. The shipped recipes are the schema: a key is
valid when some shipped recipe (or its `runlocal` variant) sets it, or when it is one of
the optional keys below, which the library reads only when present. Sub-trees checked by
their own consumers (augmentation fields by `AugmentConfig`, backbone overrides by the
backbone's constructor) are left open.
"""

from __future__ import annotations

import functools

import ml_collections

from ssvbench import config as config_lib

# Keys read only when set; each is documented where it is read.
OPTIONAL_KEYS = (
    "train.init_from",            # runs.initial_state_for: start from another run's backbone
    "data.record_indices",        # data/record_indices.py: train on a subset of the store
    "method.debiased_tau_plus",   # methods/simclr.py: debiased contrastive loss
    "method.hard_negative_beta",  # methods/simclr.py: hard-negative weighting
    "method.num_assign_views",    # methods/swav.py
    "method.decoder_width",       # methods/videomae.py
    "method.decoder_heads",       # methods/videomae.py
)
# Sub-trees whose fields are validated by the code that consumes them.
OPEN_SUBTREES = ("data.augment", "model.overrides", "model.input_norm", "method.video",
                 "online_eval", "evals")


@functools.cache
def known_keys() -> frozenset[str]:
  """Every dotted leaf key set by a shipped pre-training recipe, plus OPTIONAL_KEYS."""
  keys = set(OPTIONAL_KEYS)
  for name in config_lib.available_recipes():
    for variant in ("", ":runlocal"):
      try:
        recipe = config_lib.load_config(name + variant)
      except config_lib.ConfigError:  # A recipe without that variant.
        continue
      keys.update(config_lib.flatten_keys(recipe))
  return frozenset(keys)


def _is_open(key: str) -> bool:
  return any(key == root or key.startswith(root + ".") for root in OPEN_SUBTREES)


def check_pretrain_config(config: ml_collections.ConfigDict, source: str) -> None:
  """Raises ConfigError (one line) naming every key of `config` no recipe knows.

  Args:
    config: a loaded pre-training config (after command-line overrides).
    source: the config file, for the message.
  """
  known = known_keys()
  unknown = [key for key in config_lib.flatten_keys(config)
             if key not in known and not _is_open(key)]
  if not unknown:
    return
  hints = []
  for key in unknown:
    close = config_lib.closest_keys_in(sorted(known), key)
    hints.append(f"{key!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
  raise config_lib.ConfigError(
      f"{source}: unknown config key(s) {', '.join(hints)}; no ssvbench recipe sets them, so "
      "they would be ignored. Fix the spelling, or remove them.")
