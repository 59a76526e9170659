"""The ssvbench 3D ResNets written in plain PyTorch, as the CPU speed reference.

Why our own code rather than torchvision: the benchmark must compare the *same*
architecture, including the CPU-sized variants (r3d_cpu, r3d_tiny) that torchvision does
not have, and torch is an optional ``bench`` extra without torchvision. The layout follows
``ssvbench.models.resnet3d`` (and torchvision's VideoResNet): stem conv+BN+ReLU, four
stages of BasicBlock/Bottleneck with 1x1x1 strided projection shortcuts, global average
pool, no classifier. Only ``torch`` is imported; nothing here is used by the library.
"""

from __future__ import annotations

import torch
from torch import nn

from ssvbench.models.registry import backbone_spec
from ssvbench.models.resnet3d import ResNet3DSpec, r2plus1d_midplanes


def _padding(kernel):
  return tuple(k // 2 for k in kernel)


def _conv(cin, cout, kernel, stride):
  kernel = (kernel,) * 3 if isinstance(kernel, int) else tuple(kernel)
  stride = (stride,) * 3 if isinstance(stride, int) else tuple(stride)
  conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=_padding(kernel), bias=False)
  nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
  return conv


def _spatiotemporal(kind, cin, cout, midplanes, stride):
  if kind == "3d":
    return _conv(cin, cout, 3, stride)
  if kind == "no_temporal":
    return _conv(cin, cout, (1, 3, 3), (1, stride, stride))
  return nn.Sequential(_conv(cin, midplanes, (1, 3, 3), (1, stride, stride)),
                       nn.BatchNorm3d(midplanes), nn.ReLU(inplace=True),
                       _conv(midplanes, cout, (3, 1, 1), (stride, 1, 1)))


def _shortcut(kind, cin, cout, stride):
  strides = (1, stride, stride) if kind == "no_temporal" else (stride,) * 3
  return nn.Sequential(_conv(cin, cout, 1, strides), nn.BatchNorm3d(cout))


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin, planes, kind, stride):
    super().__init__()
    mid = r2plus1d_midplanes(cin, planes)
    self.conv1 = _spatiotemporal(kind, cin, planes, mid, stride)
    self.bn1 = nn.BatchNorm3d(planes)
    self.conv2 = _spatiotemporal(kind, planes, planes, mid, 1)
    self.bn2 = nn.BatchNorm3d(planes)
    self.relu = nn.ReLU(inplace=True)
    self.downsample = (_shortcut(kind, cin, planes, stride)
                       if stride != 1 or cin != planes else None)

  def forward(self, x):
    shortcut = x if self.downsample is None else self.downsample(x)
    y = self.relu(self.bn1(self.conv1(x)))
    return self.relu(self.bn2(self.conv2(y)) + shortcut)


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin, planes, kind, stride):
    super().__init__()
    mid = r2plus1d_midplanes(cin, planes)
    out = planes * 4
    self.reduce = nn.Sequential(_conv(cin, planes, 1, 1), nn.BatchNorm3d(planes),
                                nn.ReLU(inplace=True))
    self.conv2 = _spatiotemporal(kind, planes, planes, mid, stride)
    self.bn2 = nn.BatchNorm3d(planes)
    self.expand = nn.Sequential(_conv(planes, out, 1, 1), nn.BatchNorm3d(out))
    self.relu = nn.ReLU(inplace=True)
    self.downsample = (_shortcut(kind, cin, out, stride)
                       if stride != 1 or cin != out else None)

  def forward(self, x):
    shortcut = x if self.downsample is None else self.downsample(x)
    y = self.relu(self.bn2(self.conv2(self.reduce(x))))
    return self.relu(self.expand(y) + shortcut)


class TorchResNet3D(nn.Module):
  """[B, 3, T, H, W] clips -> [B, feature_dim] pooled features."""

  def __init__(self, spec: ResNet3DSpec):
    super().__init__()
    spec.validate()
    if spec.stem == "basic":
      self.stem = nn.Sequential(
          _conv(3, spec.stem_width, spec.stem_kernel, spec.stem_strides),
          nn.BatchNorm3d(spec.stem_width), nn.ReLU(inplace=True))
    else:
      self.stem = nn.Sequential(
          _conv(3, 45, (1, 7, 7), spec.stem_strides), nn.BatchNorm3d(45),
          nn.ReLU(inplace=True), _conv(45, spec.stem_width, (3, 1, 1), 1),
          nn.BatchNorm3d(spec.stem_width), nn.ReLU(inplace=True))
    block = BasicBlock if spec.block == "basic" else Bottleneck
    cin = spec.stem_width
    stages = []
    for count, planes, kind, stride in zip(spec.blocks, spec.widths, spec.stage_convs,
                                           spec.stage_strides):
      blocks = []
      for index in range(count):
        blocks.append(block(cin, planes, kind, stride if index == 0 else 1))
        cin = planes * block.expansion
      stages.append(nn.Sequential(*blocks))
    self.stages = nn.Sequential(*stages)
    self.feature_dim = cin

  def forward(self, x):
    return self.stages(self.stem(x)).mean(dim=(2, 3, 4))


def build_torch_backbone(name: str, **overrides) -> TorchResNet3D:
  """The PyTorch twin of ``ssvbench.models.registry.build_backbone(name, **overrides)``.

  Args:
    name: backbone name (same registry, so the same architecture spec).
    **overrides: architecture overrides as for ``build_backbone``.

  Returns:
    A TorchResNet3D in training mode.
  """
  overrides.pop("conv_impl", None)
  return TorchResNet3D(backbone_spec(name, **overrides))
