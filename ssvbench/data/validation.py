"""Carving a validation split out of a training list, by leakage group.

Hyper-parameters are chosen on validation, never on test. Clips cut from one source
video (UCF101's gGG, an HMDB51 film, a Kinetics YouTube id) are near-duplicates, so a
validation split that separates clips of one group would leak and flatter whatever it
selects. The carving is therefore by group, stratified by class, and deterministic: a
group's fate depends only on its name, its class and the seed, not on list order, so
the same training list always yields the same validation split.
"""

from __future__ import annotations

import collections
import hashlib
import math
from typing import Sequence

import numpy as np

# Version of the carving rule; recorded with every result that used it.
CARVING_VERSION = "group-hash-v1"


def _group_rank(seed: int, label: int, group: str) -> str:
  return hashlib.sha256(f"{seed}:{label}:{group}".encode()).hexdigest()


def carve_validation(
    labels: Sequence[int],
    groups: Sequence[str],
    fraction: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
  """Selects whole groups of each class as validation.

  For every class, its groups are ranked by a hash of (seed, class, group) and the first
  `ceil(fraction * num_groups)` of them go to validation, keeping at least one group for
  training. A class with a single group keeps it in training (it cannot be split without
  a leak).

  Args:
    labels: class index per video.
    groups: leakage-group key per video (same length as `labels`).
    fraction: target fraction of each class's groups sent to validation, in (0, 1).
    seed: changes which groups are chosen.

  Returns:
    A boolean mask over the videos, True for validation.
  """
  if len(labels) != len(groups):
    raise ValueError(
        f"carve_validation: {len(labels)} labels but {len(groups)} groups; expected one"
        " group per video.")
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"carve_validation: fraction must be in (0, 1), got {fraction}.")
  groups_of_class: dict[int, set[str]] = collections.defaultdict(set)
  for label, group in zip(labels, groups):
    groups_of_class[int(label)].add(str(group))
  chosen: set[tuple[int, str]] = set()
  for label, class_groups in groups_of_class.items():
    if len(class_groups) < 2:
      continue
    ranked = sorted(class_groups, key=lambda g: _group_rank(seed, label, g))
    count = min(len(ranked) - 1, max(1, math.ceil(fraction * len(ranked))))
    chosen.update((label, g) for g in ranked[:count])
  return np.array([(int(l), str(g)) in chosen for l, g in zip(labels, groups)], dtype=bool)
