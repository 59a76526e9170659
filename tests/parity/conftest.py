"""Parity with the PyTorch reference modules: a separate suite, run with --parity.

These tests need torch (and torchvision for the torchvision models), which the main
suite does not install, so the main suite must not even collect them: every test file
under this folder is ignored unless ``--parity`` is given, which is only possible when
this folder is named on the command line (``pytest tests/parity --parity``), because
pytest reads options from the conftest files of the paths it is given. Collected items
carry the ``parity`` marker.
"""

import pathlib

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent


def pytest_addoption(parser):
  parser.addoption("--parity", action="store_true", default=False,
                   help="run the PyTorch parity tests in tests/parity")


def pytest_configure(config):
  config.addinivalue_line("markers", "parity: compares with a PyTorch reference module "
                          "(needs torch; tests/parity, run with --parity)")


def pytest_ignore_collect(collection_path, config):
  if HERE in pathlib.Path(collection_path).parents and not config.getoption(
      "--parity", default=False):
    return True
  return None


def pytest_collection_modifyitems(config, items):
  for item in items:
    if HERE in pathlib.Path(str(item.fspath)).parents:
      item.add_marker(pytest.mark.parity)


def randomize_batch_norms(module, seed: int = 0) -> None:
  """Non-trivial BN statistics and affine parameters, so eval mode exercises all four."""
  import torch
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for layer in module.modules():
      if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
        shape = layer.running_mean.shape
        layer.weight.copy_(0.5 + torch.rand(shape, generator=generator))
        layer.bias.copy_(0.1 * torch.randn(shape, generator=generator))
        layer.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
        layer.running_var.copy_(0.5 + 1.5 * torch.rand(shape, generator=generator))


def torch_state_dict(module) -> dict:
  return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


@pytest.fixture(scope="session")
def flax_features():
  """(arch, numpy state dict, clips [B, T, H, W, 3]) -> converted backbone's features.

  Goes through ``import_torch.convert_state_dict`` (the CLI's path) and runs the
  ssvbench backbone in eval mode under jit.
  """
  import jax
  from flax import nnx
  from ssvbench.models import import_torch
  from ssvbench.models.registry import build_backbone

  def run(arch, state, clips, *, expected_layout=None):
    arrays, overrides, layout, _ = import_torch.convert_state_dict(
        arch, state, import_torch.backbone_target_shapes(arch))
    if expected_layout is not None:
      assert layout == expected_layout
    model = nnx.eval_shape(lambda: build_backbone(arch, rngs=nnx.Rngs(0), **overrides))
    model.eval()
    graphdef, abstract = nnx.split(model)
    flat = [(path, value.replace(arrays[tuple(path)]))
            for path, value in nnx.to_flat_state(abstract)]
    state = nnx.from_flat_state(flat)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    return np.asarray(forward(state, np.asarray(clips, np.float32)))
  return run
