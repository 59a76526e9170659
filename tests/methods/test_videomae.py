"""VideoMAE: tube masks, normalised-pixel targets and the loss against numpy loops, and a
few real training steps through the trainer on the tiny SynthActions store."""

import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from ssvbench import runs
from ssvbench import config as config_lib
from ssvbench.methods import base, registry, videomae
from ssvbench.models import vit3d
from ssvbench.models.registry import build_backbone
from ssvbench.train import trainer

CONFIG_FILE = pathlib.Path(__file__).resolve().parents[2] / "ssvbench/configs/pretrain/videomae_vit3d_synthactions.py"


def numpy_targets(clips: np.ndarray, tubelet) -> np.ndarray:
  """Per-tubelet, per-channel normalised pixels, one tubelet at a time."""
  batch, frames, height, width, _ = clips.shape
  kt, kh, kw = tubelet
  grid = (frames // kt, height // kh, width // kw)
  out = np.zeros((batch, int(np.prod(grid)), kt * kh * kw * 3))
  for b in range(batch):
    for t in range(grid[0]):
      for h in range(grid[1]):
        for w in range(grid[2]):
          patch = clips[b, t * kt:(t + 1) * kt, h * kh:(h + 1) * kh,
                        w * kw:(w + 1) * kw].astype(np.float64) / 255.0
          pixels = patch.reshape(-1, 3)
          normed = (pixels - pixels.mean(0)) / np.sqrt(pixels.var(0, ddof=1) + 1e-6)
          out[b, (t * grid[1] + h) * grid[2] + w] = normed.reshape(kt, kh, kw, 3).ravel()
  return out


def test_tube_mask_hides_the_same_positions_at_every_time_step():
  # VideoMAE's ViT-B grid: 8 x 14 x 14 tokens, 176 of 196 positions hidden per step.
  visible, masked = videomae.tube_mask(jax.random.PRNGKey(3), 3, (8, 14, 14), 0.9)
  visible, masked = np.asarray(visible), np.asarray(masked)
  assert visible.shape == (3, 8 * 20) and masked.shape == (3, 8 * 176)
  for b in range(3):
    assert sorted(np.concatenate([visible[b], masked[b]])) == list(range(8 * 196))
    hidden_by_step = [set(masked[b][masked[b] // 196 == t] % 196) for t in range(8)]
    assert all(len(s) == 176 and s == hidden_by_step[0] for s in hidden_by_step)
  # Different clips get different masks.
  assert set(masked[0]) != set(masked[1])
  with pytest.raises(ValueError, match="at least one must be hidden and one visible"):
    videomae.tube_mask(jax.random.PRNGKey(0), 1, (2, 2, 2), 0.1)


def test_patch_targets_match_numpy_loops():
  clips = np.random.default_rng(0).integers(0, 256, (2, 4, 16, 24, 3), dtype=np.uint8)
  got = videomae.patch_targets(jnp.asarray(clips), (2, 8, 8))
  np.testing.assert_allclose(np.asarray(got), numpy_targets(clips, (2, 8, 8)), atol=2e-4)
  raw = videomae.patch_targets(jnp.asarray(clips), (2, 8, 8), normalize=False)
  np.testing.assert_allclose(np.asarray(raw)[1, 4, :3], clips[1, 0, 8, 8] / 255.0, rtol=1e-6)


@pytest.fixture(scope="module")
def small_mae():
  method = registry.get_method(ml_collections.ConfigDict(dict(
      name="videomae", num_views=1, mask_ratio=0.75, normalize_targets=True, decoder_width=32,
      decoder_depth=1, decoder_heads=2)))
  backbone = build_backbone("vit3d_tiny", rngs=nnx.Rngs(0), depth=1, final_norm="tokens")
  model = method.build_model(backbone, 4, nnx.Rngs(1))
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, clips, rng):
    model = nnx.merge(graphdef, state, copy=True)
    loss, metrics = method.loss(model, {"clips": clips}, rng)
    predictions, visible, masked = method.predict(model, clips[:, 0], rng)
    return loss, metrics, predictions, visible, masked

  return method, model, lambda clips, rng: run(state, clips, rng)


def test_loss_is_the_mse_on_hidden_tubelets_only(small_mae):
  method, model, run = small_mae
  rng = jax.random.PRNGKey(7)
  clips = np.random.default_rng(1).integers(0, 256, (2, 1, 8, 32, 32, 3), dtype=np.uint8)
  loss, metrics, predictions, visible, masked = run(clips, rng)
  predictions, visible, masked = map(np.asarray, (predictions, visible, masked))
  # 4x4 spatial positions, int(0.75 * 16) = 12 hidden at each of 4 time steps.
  assert masked.shape == (2, 48) and visible.shape == (2, 16)
  assert float(metrics["hidden_fraction"]) == 0.75
  targets = numpy_targets(clips[:, 0], (2, 8, 8))
  expected = np.mean([(predictions[b] - targets[b, masked[b]]) ** 2 for b in range(2)])
  np.testing.assert_allclose(float(loss), expected, rtol=1e-4)

  # The encoder sees only visible tubelets: changing hidden pixels leaves the
  # predictions unchanged (only the targets move); changing a visible one does not.
  def tubelet_of(clip_index, token):
    t, rest = divmod(int(token), 16)
    h, w = divmod(rest, 4)
    return (clip_index, 0, slice(2 * t, 2 * t + 2), slice(8 * h, 8 * h + 8),
            slice(8 * w, 8 * w + 8))

  hidden_changed = clips.copy()
  for token in masked[0]:
    hidden_changed[tubelet_of(0, token)] = 255 - clips[tubelet_of(0, token)]
  loss2, _, predictions2, _, _ = run(hidden_changed, rng)
  np.testing.assert_array_equal(np.asarray(predictions2), predictions)
  assert abs(float(loss2) - float(loss)) > 1e-3
  visible_changed = clips.copy()
  visible_changed[tubelet_of(0, visible[0, 0])] = 0
  _, _, predictions3, _, _ = run(visible_changed, rng)
  assert np.abs(np.asarray(predictions3)[0] - predictions[0]).max() > 1e-6


def test_needs_a_vit_backbone():
  method = registry.get_method(ml_collections.ConfigDict(dict(name="videomae", decoder_depth=1)))
  backbone = nnx.eval_shape(lambda: build_backbone("r3d_tiny", rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="needs a ViT backbone"):
    method.build_model(backbone, 4, nnx.Rngs(0))


@pytest.mark.slow
def test_trains_with_the_trainer_and_evaluates_with_the_plain_vit(tiny_store, tmp_path):
  config = config_lib.load_config(f"{CONFIG_FILE}:runlocal")
  config.data.store_dir = str(tiny_store)
  config.train.update(num_steps=8, log_every=1, checkpoint_every=8)
  config.model.overrides.depth = 2  # Compile time; the recipe's 4 blocks train the same way.
  trainer.train(config, tmp_path / "mae", progress=False)
  lines = (tmp_path / "mae" / "metrics.jsonl").read_text().splitlines()
  losses = [json.loads(line)["loss"] for line in lines]
  assert len(losses) == 8 and np.all(np.isfinite(losses))
  assert np.mean(losses[-3:]) < np.mean(losses[:3])
  _, model, step = runs.load_trained_model(tmp_path / "mae")
  assert step == 8 and isinstance(model.backbone, vit3d.ViT3D)
  clips = np.random.default_rng(0).integers(0, 256, (2, 1, 8, 32, 32, 3), dtype=np.uint8)
  graphdef, state = nnx.split(model.backbone)
  features = jax.jit(lambda s, c: base.encode_views(nnx.merge(graphdef, s), c))(
      state, jnp.asarray(clips))
  assert features.shape == (2, 1, 64) and np.all(np.isfinite(np.asarray(features)))
