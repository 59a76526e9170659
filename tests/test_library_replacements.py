"""Hand-written copies replaced by library calls give the same numbers, to the bit.

The references below are the replaced implementations, kept here as test oracles only.
"""

from __future__ import annotations

import hashlib
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssvbench import hashing
from ssvbench.data import store as store_lib
from ssvbench.evaluators import linear
from ssvbench.evaluators import protocol as protocol_lib


@jax.jit
def _hand_sgd_cosine(x, y, batch_indices, learning_rates, weight_decays):
  """The linear probe's former training loop (heavy-ball SGD, momentum 0.9, a hand cosine
  schedule), vmapped over the grid as it was."""
  total_steps = batch_indices.shape[0]
  num_classes, momentum = 6, 0.9

  def loss_fn(params, x_batch, y_batch, weight_decay):
    weights, bias = params
    logits = x_batch @ weights + bias
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(logits, y_batch).mean()
    return cross_entropy + 0.5 * weight_decay * jnp.sum(weights * weights)

  def train_one(learning_rate, weight_decay):
    params = (jnp.zeros((x.shape[1], num_classes), jnp.float32),
              jnp.zeros((num_classes,), jnp.float32))
    velocity = jax.tree.map(jnp.zeros_like, params)

    def step(carry, inputs):
      params, velocity = carry
      step_index, indices = inputs
      grads = jax.grad(loss_fn)(params, x[indices], y[indices], weight_decay)
      velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
      rate = learning_rate * 0.5 * (1.0 + jnp.cos(jnp.pi * step_index / total_steps))
      params = jax.tree.map(lambda p, v: p - rate * v, params, velocity)
      return (params, velocity), None

    (params, _), _ = jax.lax.scan(step, (params, velocity),
                                  (jnp.arange(total_steps), batch_indices))
    return params

  return jax.vmap(train_one)(learning_rates, weight_decays)


def test_optax_probe_equals_the_hand_written_sgd_cosine_to_the_bit():
  rng = np.random.default_rng(0)
  num, dim, classes = 300, 64, 6
  centres = rng.standard_normal((classes, dim)) * 0.3
  y = rng.integers(0, classes, num)
  x = (centres[y] + rng.standard_normal((num, dim))).astype(np.float32)
  batches = linear._batch_indices(num, 64, 12, seed=0)
  inputs = (jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(batches),
            jnp.asarray([1.0, 6.0], jnp.float32), jnp.asarray([0.0, 1e-3], jnp.float32))
  weights, biases = linear._train_grid(*inputs, num_classes=classes, momentum=0.9)
  ref_weights, ref_biases = _hand_sgd_cosine(*inputs)
  assert float(np.abs(np.asarray(ref_weights)).max()) > 0.1  # It trained.
  np.testing.assert_array_equal(np.asarray(weights), np.asarray(ref_weights))
  np.testing.assert_array_equal(np.asarray(biases), np.asarray(ref_biases))


def test_file_sha256_and_canonical_json_match_the_replaced_definitions(tmp_path):
  data = np.random.default_rng(1).bytes(3 * (1 << 20) + 17)  # Spans several read blocks.
  (tmp_path / "blob").write_bytes(data)
  assert hashing.file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
  value = {"b": [1, 2.5, "é"], "a": {"z": None, "y": True}}
  # The store's former canonical_json (bytes) and the protocol's (str, NaN refused).
  store_form = json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")
  assert hashing.canonical_json(value).encode() == store_form
  assert protocol_lib.canonical_json is hashing.canonical_json
  manifest = {"manifest_hash": "x", "fps": math.nan, "videos": value}
  assert store_lib.compute_manifest_hash(manifest) == hashlib.sha256(json.dumps(
      {"fps": math.nan, "videos": value}, sort_keys=True, separators=(",", ":")).encode(
          "ascii")).hexdigest()
