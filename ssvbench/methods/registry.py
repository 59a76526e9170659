"""The method registry: `config.method.name` -> the class that implements it.

A string table (module path, class name), like the evaluators' registry, so that looking
up one method imports only that method's module and no module imports every method.
"""

from __future__ import annotations

import importlib

import ml_collections

# name -> (module, class). Module names match the method files.
METHODS = {
    "barlow_twins": ("ssvbench.methods.barlow_twins", "BarlowTwins"),
    "byol": ("ssvbench.methods.byol", "BYOL"),
    "moco_v2": ("ssvbench.methods.moco", "MoCoV2"),
    "moco_v3": ("ssvbench.methods.moco", "MoCoV3"),
    "random_init": ("ssvbench.methods.supervised", "RandomInit"),
    "simclr": ("ssvbench.methods.simclr", "SimCLR"),
    "simsiam": ("ssvbench.methods.simsiam", "SimSiam"),
    "supcon": ("ssvbench.methods.supcon", "SupCon"),
    "supervised": ("ssvbench.methods.supervised", "Supervised"),
    "swav": ("ssvbench.methods.swav", "SwAV"),
    "vicreg": ("ssvbench.methods.vicreg", "VICReg"),
    "videomae": ("ssvbench.methods.videomae", "VideoMAE"),
}


def available_methods() -> list[str]:
  return sorted(METHODS)


def method_class(name: str) -> type:
  """The class registered for `name`; a ValueError lists the valid names."""
  if name not in METHODS:
    raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}.")
  module_name, class_name = METHODS[name]
  return getattr(importlib.import_module(module_name), class_name)


def get_method(config: ml_collections.ConfigDict):
  """Instantiates the method named by `config.name` (a `base.Method`)."""
  return method_class(config.name)(config)
