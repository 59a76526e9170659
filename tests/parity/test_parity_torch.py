"""Slow-R50 and VideoMAE ViT-B: PyTorch rewrites of the reference modules == ssvbench.

pytorchvideo and the VideoMAE repository are not installable here, so their modules are
written out below in PyTorch from the reference code's structure, with the reference's
parameter names (so ``state_dict()`` has the published checkpoints' keys): pytorchvideo's
``create_slow`` ResNet (blocks.0 stem, blocks.1-4 ResStage of ResBlock/BottleneckBlock,
blocks.5 head) and VideoMAE's ``VisionTransformer`` (q/v biases, mean pooling + fc_norm;
its pre-training encoder with ``encoder.`` prefix and per-token norm). Random weights,
eval mode, same clips, features within 1e-4.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ssvbench import runs
from ssvbench.models import import_torch, vit3d

from .conftest import randomize_batch_norms, torch_state_dict


# ------------------------------------------------------------------------ pytorchvideo Slow


class Stem(nn.Module):
  def __init__(self):
    super().__init__()
    self.conv = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
    self.norm = nn.BatchNorm3d(64)
    self.activation = nn.ReLU()
    self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))

  def forward(self, x):
    return self.pool(self.activation(self.norm(self.conv(x))))


class BottleneckBlock(nn.Module):
  def __init__(self, cin, inner, cout, kt, stride):
    super().__init__()
    self.conv_a = nn.Conv3d(cin, inner, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
    self.norm_a = nn.BatchNorm3d(inner)
    self.act_a = nn.ReLU()
    self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1),
                            bias=False)
    self.norm_b = nn.BatchNorm3d(inner)
    self.act_b = nn.ReLU()
    self.conv_c = nn.Conv3d(inner, cout, 1, bias=False)
    self.norm_c = nn.BatchNorm3d(cout)

  def forward(self, x):
    x = self.act_a(self.norm_a(self.conv_a(x)))
    x = self.act_b(self.norm_b(self.conv_b(x)))
    return self.norm_c(self.conv_c(x))


class ResBlock(nn.Module):
  def __init__(self, cin, inner, cout, kt, stride):
    super().__init__()
    if cin != cout or stride != 1:
      self.branch1_conv = nn.Conv3d(cin, cout, 1, (1, stride, stride), bias=False)
      self.branch1_norm = nn.BatchNorm3d(cout)
    else:
      self.branch1_conv = None
    self.branch2 = BottleneckBlock(cin, inner, cout, kt, stride)
    self.activation = nn.ReLU()

  def forward(self, x):
    shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
    return self.activation(shortcut + self.branch2(x))


class ResStage(nn.Module):
  def __init__(self, blocks):
    super().__init__()
    self.res_blocks = nn.ModuleList(blocks)

  def forward(self, x):
    for block in self.res_blocks:
      x = block(x)
    return x


class Head(nn.Module):
  def __init__(self):
    super().__init__()
    self.proj = nn.Linear(2048, 400)


class SlowR50(nn.Module):
  """pytorchvideo's slow_r50; forward returns the pooled 2048-d features."""

  def __init__(self):
    super().__init__()
    stages, cin = [Stem()], 64
    for depth, inner, kt, stride in zip((3, 4, 6, 3), (64, 128, 256, 512), (1, 1, 3, 3),
                                        (1, 2, 2, 2)):
      blocks = []
      for index in range(depth):
        blocks.append(ResBlock(cin, inner, 4 * inner, kt, stride if index == 0 else 1))
        cin = 4 * inner
      stages.append(ResStage(blocks))
    stages.append(Head())
    self.blocks = nn.ModuleList(stages)

  def forward(self, x):
    for block in self.blocks[:5]:
      x = block(x)
    return x.mean(dim=(2, 3, 4))


def _slowfast_names(state: dict) -> dict:
  """The same weights under the SlowFast repository's names (s1.pathway0_stem, ...)."""
  renamed = {}
  for key, value in state.items():
    parts = key.split(".")
    if parts[1] == "0":
      new = "s1.pathway0_stem." + ".".join(parts[2:]).replace("norm.", "bn.")
    elif parts[1] == "5":
      new = "head.projection." + parts[-1]
    else:
      stage, block, rest = int(parts[1]) + 1, parts[3], ".".join(parts[4:])
      rest = (rest.replace("branch1_conv", "branch1").replace("branch1_norm", "branch1_bn")
              .replace("conv_a", "a").replace("conv_b", "b").replace("conv_c", "c")
              .replace("norm_a", "a_bn").replace("norm_b", "b_bn").replace("norm_c", "c_bn"))
      new = f"s{stage}.pathway0_res{block}.{rest}"
    renamed[new] = value
  return renamed


def _clips(seed, shape):
  return np.random.default_rng(seed).standard_normal(shape + (3,)).astype(np.float32)


def _torch_forward(model, clips):
  with torch.no_grad():
    return model(torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()).numpy()


def test_slow_r50_pytorchvideo_and_slowfast_layouts(flax_features):
  torch.manual_seed(0)
  model = SlowR50()
  randomize_batch_norms(model, 0)
  model.eval()
  clips = _clips(1, (2, 4, 64, 64))
  expected = _torch_forward(model, clips)
  state = torch_state_dict(model)
  got = flax_features("slow_r50", state, clips, expected_layout="pytorchvideo")
  assert got.shape == expected.shape == (2, 2048)
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
  # SlowFast's names convert to exactly the same arrays.
  ours = import_torch.convert_state_dict("slow_r50", state,
                                         import_torch.backbone_target_shapes("slow_r50"))
  theirs = import_torch.convert_state_dict("slow_r50", _slowfast_names(state),
                                           import_torch.backbone_target_shapes("slow_r50"))
  assert theirs[2] == "slowfast" and sorted(ours[0]) == sorted(theirs[0])
  for path, array in ours[0].items():
    np.testing.assert_array_equal(theirs[0][path], array)


# ------------------------------------------------------------------------ VideoMAE ViT


class Attention(nn.Module):
  def __init__(self, dim, heads, full_qkv_bias=False):
    super().__init__()
    self.heads = heads
    self.full_qkv_bias = full_qkv_bias
    self.qkv = nn.Linear(dim, 3 * dim, bias=full_qkv_bias)
    if not full_qkv_bias:
      self.q_bias = nn.Parameter(0.1 * torch.randn(dim))
      self.v_bias = nn.Parameter(0.1 * torch.randn(dim))
    self.proj = nn.Linear(dim, dim)

  def forward(self, x):
    batch, tokens, dim = x.shape
    if self.full_qkv_bias:
      qkv = self.qkv(x)
    else:
      bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
      qkv = F.linear(x, self.qkv.weight, bias)
    qkv = qkv.reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (dim // self.heads) ** -0.5, qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    return self.proj((attn @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
  def __init__(self, dim):
    super().__init__()
    self.fc1 = nn.Linear(dim, 4 * dim)
    self.act = nn.GELU()
    self.fc2 = nn.Linear(4 * dim, dim)

  def forward(self, x):
    return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
  def __init__(self, dim, heads, full_qkv_bias):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim, eps=1e-6)
    self.attn = Attention(dim, heads, full_qkv_bias)
    self.norm2 = nn.LayerNorm(dim, eps=1e-6)
    self.mlp = Mlp(dim)

  def forward(self, x):
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
  def __init__(self, dim):
    super().__init__()
    self.proj = nn.Conv3d(3, dim, (2, 16, 16), (2, 16, 16))


class VisionTransformer(nn.Module):
  """VideoMAE's ViT; final='fc_norm' (fine-tuned, mean pooling) or 'norm' (pre-training
  encoder: per-token norm, then the mean)."""

  def __init__(self, dim=768, depth=12, heads=12, final="fc_norm", full_qkv_bias=False):
    super().__init__()
    self.patch_embed = PatchEmbed(dim)
    self.blocks = nn.ModuleList([Block(dim, heads, full_qkv_bias) for _ in range(depth)])
    self.final = final
    setattr(self, final, nn.LayerNorm(dim, eps=1e-6))
    with torch.no_grad():
      getattr(self, final).weight.copy_(1 + 0.1 * torch.randn(dim))
      getattr(self, final).bias.copy_(0.1 * torch.randn(dim))
      for block in self.blocks:
        for norm in (block.norm1, block.norm2):
          norm.weight.copy_(1 + 0.1 * torch.randn(dim))
          norm.bias.copy_(0.1 * torch.randn(dim))
    if final == "fc_norm":
      self.head = nn.Linear(dim, 400)

  def forward(self, x):
    x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
    table = torch.from_numpy(vit3d.sincos_table(x.shape[1], x.shape[2]))
    x = x + table
    for block in self.blocks:
      x = block(x)
    if self.final == "fc_norm":
      return self.fc_norm(x.mean(1))
    return self.norm(x).mean(1)


def test_videomae_vit_b_finetuned_layout(flax_features):
  torch.manual_seed(0)
  model = VisionTransformer().eval()
  clips = _clips(2, (2, 4, 32, 32))
  expected = _torch_forward(model, clips)
  got = flax_features("vit3d_b16", torch_state_dict(model), clips, expected_layout="videomae")
  assert got.shape == (2, 768)
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_videomae_pretraining_checkpoint_and_full_qkv_bias(flax_features):
  """encoder.* keys with a decoder beside them; timm-style qkv bias with a non-zero key
  part, which must not matter (a per-query constant cancels in the softmax)."""
  torch.manual_seed(1)
  encoder = VisionTransformer(dim=384, depth=12, heads=6, final="norm",
                              full_qkv_bias=True).eval()
  with torch.no_grad():
    for block in encoder.blocks:
      block.attn.qkv.bias.copy_(0.5 * torch.randn(3 * 384))
  clips = _clips(3, (2, 4, 32, 32))
  expected = _torch_forward(encoder, clips)
  state = {f"encoder.{k}": v for k, v in torch_state_dict(encoder).items()}
  rng = np.random.default_rng(0)
  state.update({"encoder_to_decoder.weight": rng.standard_normal((192, 384)),
                "mask_token": rng.standard_normal((1, 1, 192)),
                "decoder.norm.weight": rng.standard_normal(192),
                "decoder.head.weight": rng.standard_normal((1536, 192))})
  got = flax_features("vit3d_s16", state, clips, expected_layout="videomae_pretrain")
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------ CoCLR S3D


class BasicConv3d(nn.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv = nn.Conv3d(cin, cout, 1, bias=False)
    self.bn = nn.BatchNorm3d(cout)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


class STConv3d(nn.Module):
  def __init__(self, cin, cout, k, stride=1, t_stride=1):
    super().__init__()
    self.conv1 = nn.Conv3d(cin, cout, (1, k, k), (1, stride, stride), (0, k // 2, k // 2),
                           bias=False)
    self.conv2 = nn.Conv3d(cout, cout, (k, 1, 1), (t_stride, 1, 1), (k // 2, 0, 0),
                           bias=False)
    self.bn1, self.bn2 = nn.BatchNorm3d(cout), nn.BatchNorm3d(cout)

  def forward(self, x):
    return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class SelfGating(nn.Module):
  def __init__(self, dim):
    super().__init__()
    self.fc = nn.Linear(dim, dim)

  def forward(self, x):
    return torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))[:, :, None, None, None] * x


class SepInception(nn.Module):
  def __init__(self, cin, widths, gating):
    super().__init__()
    b0, b1a, b1b, b2a, b2b, b3b = widths
    self.branch0 = nn.Sequential(BasicConv3d(cin, b0))
    self.branch1 = nn.Sequential(BasicConv3d(cin, b1a), STConv3d(b1a, b1b, 3))
    self.branch2 = nn.Sequential(BasicConv3d(cin, b2a), STConv3d(b2a, b2b, 3))
    self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), BasicConv3d(cin, b3b))
    self.gating = gating
    if gating:
      for index, width in enumerate((b0, b1b, b2b, b3b)):
        setattr(self, f"gating_b{index}", SelfGating(width))

  def forward(self, x):
    outs = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
    if self.gating:
      outs = [getattr(self, f"gating_b{i}")(y) for i, y in enumerate(outs)]
    return torch.cat(outs, 1)


class CoCLRS3D(nn.Module):
  """CoCLR's backbone/s3dg.py S3D (blockN are torch aliases of the named modules)."""

  def __init__(self, gating=False):
    super().__init__()
    self.Conv_1a = STConv3d(3, 64, 7, stride=2, t_stride=2)
    self.block1 = nn.Sequential(self.Conv_1a)
    self.Conv_2b, self.Conv_2c = BasicConv3d(64, 64), STConv3d(64, 192, 3)
    self.block2 = nn.Sequential(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)), self.Conv_2b,
                                self.Conv_2c)
    widths = [(192, [64, 96, 128, 16, 32, 32]), (256, [128, 128, 192, 32, 96, 64]),
              (480, [192, 96, 208, 16, 48, 64]), (512, [160, 112, 224, 24, 64, 64]),
              (512, [128, 128, 256, 24, 64, 64]), (512, [112, 144, 288, 32, 64, 64]),
              (528, [256, 160, 320, 32, 128, 128]), (832, [256, 160, 320, 32, 128, 128]),
              (832, [384, 192, 384, 48, 128, 128])]
    names = ["Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
             "Mixed_4f", "Mixed_5b", "Mixed_5c"]
    for name, (cin, w) in zip(names, widths):
      setattr(self, name, SepInception(cin, w, gating))
    pool3 = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
    pool4 = nn.MaxPool3d(3, 2, 1)
    pool5 = nn.MaxPool3d(2, 2, 0)
    self.block3 = nn.Sequential(pool3, self.Mixed_3b, self.Mixed_3c)
    self.block4 = nn.Sequential(pool4, self.Mixed_4b, self.Mixed_4c, self.Mixed_4d,
                                self.Mixed_4e, self.Mixed_4f)
    self.block5 = nn.Sequential(pool5, self.Mixed_5b, self.Mixed_5c)

  def forward(self, x):
    for block in (self.block1, self.block2, self.block3, self.block4, self.block5):
      x = block(x)
    return x.mean(dim=(2, 3, 4))


def test_coclr_s3dg_inside_a_pretraining_checkpoint(flax_features):
  torch.manual_seed(3)
  model = CoCLRS3D(gating=True)
  randomize_batch_norms(model, 3)
  model.eval()
  clips = _clips(4, (2, 8, 32, 32))
  expected = _torch_forward(model, clips)
  state = torch_state_dict(model)
  assert "block1.0.conv1.weight" in state  # The aliases are really in a CoCLR state dict.
  # As CoCLR saves it: query and key encoders, a projection head, the queue.
  wrapped = {f"encoder_q.0.{k}": v for k, v in state.items()}
  wrapped.update({f"encoder_k.0.{k}": v + 1 for k, v in state.items()})
  wrapped.update({"encoder_q.1.0.weight": np.ones((1024, 1024, 1, 1, 1), np.float32),
                  "queue": np.zeros((128, 2048), np.float32)})
  got = flax_features("s3dg", wrapped, clips, expected_layout="coclr[encoder_q.0]")
  assert got.shape == (2, 1024)
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_imported_coclr_s3d_on_raw_clips_matches_coclr_preprocessing(tmp_path, capsys):
  """Raw uint8 clips through each side with its own normalisation: the run's (ImageNet's,
  recorded by import-checkpoint for CoCLR) and CoCLR's (pixels to [0, 1], then
  T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]) per channel)."""
  import json
  import jax
  from flax import nnx
  from ssvbench import cli
  from ssvbench.methods import base as methods_base
  from ssvbench.train import trainer
  torch.manual_seed(5)
  model = CoCLRS3D(gating=False)
  randomize_batch_norms(model, 5)
  model.eval()
  state = {f"encoder_q.0.{k}": torch.from_numpy(v)
           for k, v in torch_state_dict(model).items()}
  torch.save({"epoch": 1, "state_dict": state}, tmp_path / "coclr.pth.tar")
  out = tmp_path / "imported"
  assert cli.main(["import-checkpoint", "--arch", "s3d", "--from",
                   str(tmp_path / "coclr.pth.tar"), "--out", str(out)]) == 0
  summary = json.loads(capsys.readouterr().out)
  assert summary["input_norm"]["mean"] == [0.485, 0.456, 0.406]
  raw = np.random.default_rng(8).integers(0, 256, (2, 8, 32, 32, 3), dtype=np.uint8)
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
  with torch.no_grad():
    x = torch.from_numpy(raw).permute(0, 4, 1, 2, 3).float() / 255.0  # [B, C, T, H, W]
    expected = model((x - mean) / std).numpy()
  _, restored, _ = runs.load_trained_model(out)
  graphdef, params = nnx.split(restored.backbone)
  got = np.asarray(jax.jit(lambda s, c: methods_base.encode_views(nnx.merge(graphdef, s), c))(
      params, raw[:, None]))[:, 0]
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
