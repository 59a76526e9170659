"""Fine-tuning: selection on the carved validation part only, test scored once, init_from.

A tiny fine-tune on the tiny store (r3d_tiny pre-trained by 4 SimCLR steps, the shapes of
tests/train/test_train.py so compiles are shared): 3 steps of batch 8 over the 8 videos left
after carving, a checkpoint every step.
"""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_pretrain_config
from ssvbench import runs
from ssvbench import cli
from ssvbench.data import pipeline, store as store_lib, validation
from ssvbench.data import record_indices as record_indices_lib
from ssvbench import finetune
from ssvbench.evaluators import extract
from ssvbench.evaluators import protocol as protocol_lib
from ssvbench.results import records
from ssvbench.train import trainer

METRICS = {"finetune/top1", "finetune/top5", "finetune/val_top1", "finetune/top1_ci95",
           "finetune/top5_ci95"}


@pytest.fixture(scope="module")
def pretrained(tiny_store, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ft_pretrain") / "simclr"
  config = tiny_pretrain_config(tiny_store, num_steps=4, log_every=1, checkpoint_every=4)
  trainer.train(config, workdir, progress=False)
  return workdir


def tiny_spec(**recipe):
  """The SynthActions protocol with a 3-step recipe and 2 views, one video per device."""
  spec = protocol_lib.load_protocol("synthactions")
  spec.views.num_temporal_views = 2
  spec.per_device_batch = 1
  spec.finetune = dict(epochs=3, batch_size=8, checkpoint_every_epochs=1, seed=0,
                       optimizer=dict(name="sgd", lr=0.05, warmup_epochs=0),
                       augment=dict(enabled=False, random_crop=True, flip=True),
                       val_views=dict(num_temporal_views=2), selection="validation")
  spec.finetune.update(recipe)
  return spec


# The same recipe as a protocol file, for the command line.
TINY_PROTOCOL_FILE = """
from test_finetune import tiny_spec

def get_config(arg=None):
  return tiny_spec()
"""


def _leaves(module):
  return [np.asarray(x) for x in jax.tree.leaves(nnx.state(module))]


@pytest.mark.slow
def test_finetune_selects_on_validation_and_scores_test_once(pretrained, tiny_store, tmp_path,
                                                             monkeypatch, capsys):
  calls = []
  original = finetune.predict_video_scores

  def recording_predict(model, source, views, **kwargs):
    scores = original(model, source, views, **kwargs)
    calls.append({"source": source, "model": model, "scores": scores})
    return scores

  monkeypatch.setattr(finetune, "predict_video_scores", recording_predict)
  initial, loaded = {}, {}
  original_init, original_load = runs.init_backbone_from, runs.load_trained_model

  def recording_load(workdir, *args, **kwargs):
    config, model, step = original_load(workdir, *args, **kwargs)
    loaded[str(workdir)] = model
    return config, model, step

  def recording_init(state, *args, **kwargs):
    state = original_init(state, *args, **kwargs)
    initial.update({key: [np.asarray(x) for x in jax.tree.leaves(state[key]["backbone"])]
                    for key in ("params", "rest")})
    return state

  monkeypatch.setattr(runs, "init_backbone_from", recording_init)
  monkeypatch.setattr(runs, "load_trained_model", recording_load)
  results_file, out = tmp_path / "results.jsonl", tmp_path / "ft"
  protocol_file = tmp_path / "tiny_finetune_protocol.py"
  protocol_file.write_text(TINY_PROTOCOL_FILE)
  # The command keeps the session's compilation cache.
  monkeypatch.setenv("SSVBENCH_JAX_CACHE", jax.config.jax_compilation_cache_dir)
  argv = ["finetune", "--workdir", str(pretrained), "--protocol", str(protocol_file),
          "--out", str(out), "--results", str(results_file), "--no-progress"]
  assert cli.main(argv) == 0
  printed = json.loads(capsys.readouterr().out)
  result = json.loads((out / "finetune.json").read_text())
  metrics, details = result["metrics"], result["details"]
  assert printed == dict(metrics, chosen_step=details["chosen_step"])
  assert set(metrics) == METRICS
  assert all(0.0 <= v <= 100.0 for v in metrics.values())

  # Training started from the pre-trained backbone: parameters and (trained) batch stats.
  _, params, rest = trainer.split_model(loaded[str(pretrained)].backbone)
  for key, tree in (("params", params), ("rest", rest)):
    expected = [np.asarray(x) for x in jax.tree.leaves(tree)]
    assert len(initial[key]) == len(expected) > 0
    for a, b in zip(initial[key], expected):
      np.testing.assert_array_equal(a, b)
  assert any(not np.isin(x, (0.0, 1.0)).all() for x in initial["rest"])

  # The carving: whole groups, disjoint, covering the training split.
  store = store_lib.PreparedStore(tiny_store)
  labels, groups = store.labels("train"), np.asarray(store.groups("train"))
  val_mask = validation.carve_validation(labels, groups, 0.2, 0)
  fit_indices, val_indices = np.nonzero(~val_mask)[0], np.nonzero(val_mask)[0]
  assert details["num_fit"] == len(fit_indices) == 8 and details["num_val"] == len(val_indices)
  assert not set(groups[fit_indices]) & set(groups[val_indices])
  train_config = json.loads((out / "train" / "config.json").read_text())
  # The training subset is a file named by its hash, not a list in config.json.
  entry = train_config["data"]["record_indices"]
  assert entry["count"] == len(fit_indices) and entry["file"].startswith("record_indices/")
  np.testing.assert_array_equal(
      record_indices_lib.read(out / finetune.TRAIN_SUBDIR, entry), fit_indices)
  assert train_config["train"]["init_from"] == str(pretrained)

  # One validation call per saved checkpoint, on the carved part only, then ONE test call.
  assert sorted(details["val_by_step"], key=int) == ["1", "2", "3"]
  *val_calls, test_call = calls
  assert len(val_calls) == 3
  for call in val_calls:
    assert isinstance(call["source"], pipeline.RecordSubset)
    np.testing.assert_array_equal(call["source"].record_indices, val_indices)
  assert not isinstance(test_call["source"], pipeline.RecordSubset)
  assert len(test_call["source"]) == store.num_videos("test") == details["num_test"]
  assert details["test_evaluations"] == 1

  # The chosen step is the best on validation, and it is the model that saw test.
  val = {int(s): v for s, v in details["val_by_step"].items()}
  chosen = details["chosen_step"]
  best_top1 = max(v["top1"] for v in val.values())
  assert val[chosen]["top1"] == best_top1 == metrics["finetune/val_top1"]
  assert chosen == min((s for s in val if val[s]["top1"] == best_top1),
                       key=lambda s: (val[s]["loss"], s))
  chosen_model = test_call["model"]
  assert chosen_model is val_calls[chosen - 1]["model"]
  for step, call in enumerate(val_calls, start=1):  # The checkpoints really differ.
    if step != chosen:
      assert any(not np.array_equal(a, b)
                 for a, b in zip(_leaves(call["model"]), _leaves(chosen_model)))

  # Scores recomputed independently: extraction + the head in numpy, per-view softmax.
  kernel = np.asarray(chosen_model.classifier.kernel[...])
  bias = np.asarray(chosen_model.classifier.bias[...])
  for split, rows, expected in (("train", val_indices, val_calls[chosen - 1]["scores"]),
                                ("test", slice(None), test_call["scores"])):
    features = extract.extract_features(chosen_model.backbone, store, split, tiny_spec().views,
                                        per_device_batch=3, progress=False)["features"][rows]
    logits = features.astype(np.float64) @ kernel + bias
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    np.testing.assert_allclose(expected, probabilities.mean(1), atol=1e-5)
  test_labels = store.labels("test")
  top1 = 100.0 * np.mean(test_call["scores"].argmax(1) == test_labels)
  assert metrics["finetune/top1"] == pytest.approx(top1)
  assert metrics["finetune/top5"] == 100.0  # 4 classes: every label is in the top 5.

  (record,) = records.load_records(results_file)
  assert record["metrics"] == metrics
  # The per-video test predictions sit beside results.jsonl, hash-checked.
  from ssvbench.results import predictions
  ids, packs = predictions.load_for_record(record, results_file.parent)
  assert len(ids) == len(test_labels) and set(packs) == {"finetune/top1", "finetune/top5"}
  assert (packs["finetune/top1"]["predicted"][0] == test_call["scores"].argmax(1)).all()
  assert record["protocol"]["fingerprint"] == protocol_lib.fingerprint(tiny_spec())
  assert record["checkpoint"].endswith(f"checkpoints/{chosen}")
  assert record["method"] == "simclr" and record["extra"]["chosen_step"] == chosen

  # A finished fine-tune is never silently overwritten; --resume reuses only the same run.
  assert cli.main(argv) == 2
  assert "pass --resume" in capsys.readouterr().err
  with pytest.raises(ValueError, match="different fine-tuning run"):
    finetune.finetune_run(pretrained, tiny_spec(epochs=2), out, resume=True, progress=False,
                          append=False)


@pytest.mark.slow
def test_init_from_refuses_another_architecture(pretrained, tiny_store):
  other = tiny_pretrain_config(tiny_store, "supervised", num_steps=0)
  other.model.overrides = dict(widths=(8, 16, 32, 32))
  optimizer = trainer.make_optimizer(other.optim, 0)
  mesh = trainer.sharding.make_mesh()
  # Shapes only: the check happens before any weight is touched.
  _, _, abstract = trainer.create_train_state(other, 4, optimizer, mesh, abstract_only=True)
  with pytest.raises(ValueError, match="do not match this run's model"):
    runs.init_backbone_from(abstract, pretrained, optimizer, mesh)


def test_train_subset_reads_only_its_records(tiny_store):
  store = store_lib.PreparedStore(tiny_store)
  source = store.data_source("train")
  kwargs = dict(global_batch_size=4, seed=1, num_clips=1, num_frames=4, frame_stride=2,
                crop_size=16, augment=None)
  everything = iter(pipeline.make_train_dataset(source, **kwargs))
  same = iter(pipeline.make_train_dataset(source, record_indices=np.arange(len(source)),
                                          **kwargs))
  for _ in range(3):
    a, b = next(everything), next(same)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  subset = [1, 4, 6, 9, 14]
  stream = iter(pipeline.make_train_dataset(source, record_indices=subset, **kwargs))
  seen = np.concatenate([next(stream)["index"] for _ in range(5)])
  assert sorted(set(seen.tolist())) == subset  # 20 draws = 4 epochs of the 5 records.
  for bad, message in (([3, 3], "repeat"), ([len(source)], "outside"), ([], "non-empty")):
    with pytest.raises(ValueError, match=message):
      pipeline.make_train_dataset(source, record_indices=bad, **kwargs)


def test_protocol_recipes_resolve_and_misuse_is_refused():
  for name in protocol_lib.available_protocols():
    recipe = protocol_lib.resolve_finetune_recipe(protocol_lib.load_protocol(name))
    assert recipe["selection"] == "validation" and recipe["epochs"] > 0, name
  with pytest.raises(protocol_lib.ProtocolError, match="would select on the test split|only "
                     "'validation'"):
    protocol_lib.validate(tiny_spec(selection="test"))
  with pytest.raises(protocol_lib.ProtocolError, match=r"finetune.selection='test'"):
    protocol_lib.resolve_finetune_recipe(tiny_spec(selection="test"))
  with pytest.raises(protocol_lib.ProtocolError, match=r"unknown key\(s\) \['epoch'\]"):
    protocol_lib.resolve_finetune_recipe(tiny_spec(epoch=3))
  with pytest.raises(protocol_lib.ProtocolError, match=r"finetune.optimizer.name='adam'"):
    protocol_lib.resolve_finetune_recipe(tiny_spec(optimizer=dict(name="adam", lr=0.1)))
  with pytest.raises(protocol_lib.ProtocolError, match=r"finetune.augment"):
    protocol_lib.resolve_finetune_recipe(tiny_spec(augment=dict(flip_prob=2.0)))
  # A misspelt recipe fails when the protocol is loaded, and the resolved recipe (defaults
  # included) is part of the fingerprint.
  with pytest.raises(protocol_lib.ProtocolError, match=r"unknown key\(s\) \['epoch'\]"):
    protocol_lib.validate(tiny_spec(epoch=3))
  base = protocol_lib.fingerprint(tiny_spec())
  assert protocol_lib.fingerprint(tiny_spec(optimizer=dict(momentum=0.9))) == base  # Default.
  assert protocol_lib.fingerprint(tiny_spec(optimizer=dict(momentum=0.8))) != base
  assert protocol_lib.fingerprint(tiny_spec(augment=dict(flip_prob=0.5))) == base  # Default.
  assert protocol_lib.fingerprint(tiny_spec(augment=dict(flip_prob=0.4))) != base
  no_recipe = protocol_lib.load_protocol("synthactions")
  with no_recipe.unlocked():
    del no_recipe["finetune"]
  with pytest.raises(protocol_lib.ProtocolError, match="no fine-tuning recipe"):
    protocol_lib.resolve_finetune_recipe(no_recipe)
  plan = finetune.plan_steps(protocol_lib.resolve_finetune_recipe(protocol_lib.load_protocol("synthactions")),
                             300)
  assert plan["num_steps"] == 56 and plan["checkpoint_every"] == 19
  assert plan["checkpoint_steps"] == [19, 38, 56]


@pytest.mark.slow
def test_sigterm_during_finetune_checkpoints_and_resume_gives_the_same_result(pretrained,
                                                                              tmp_path):
  """Preemption of a fine-tune: SIGTERM (real, to this process) stops it after a step with
  a checkpoint; `resume=True` then gives the numbers of an uninterrupted fine-tune."""
  import os
  import signal
  import threading
  import time
  from ssvbench.train import preemption
  straight = finetune.finetune_run(pretrained, tiny_spec(), tmp_path / "straight",
                                   progress=False, append=False)
  out = tmp_path / "preempted"
  metrics_file = out / finetune.TRAIN_SUBDIR / "metrics.jsonl"

  def preempt():
    while not metrics_file.exists():
      time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

  threading.Thread(target=preempt, daemon=True).start()
  with pytest.raises(preemption.Preempted) as stopped:
    finetune.finetune_run(pretrained, tiny_spec(), out, progress=False, append=False)
  assert stopped.value.exit_code == 143
  saved = runs.saved_steps(out / finetune.TRAIN_SUBDIR)
  assert saved and saved[-1] == stopped.value.step < 3
  resumed = finetune.finetune_run(pretrained, tiny_spec(), out, resume=True, progress=False,
                                  append=False)
  assert resumed["metrics"] == straight["metrics"]
  assert resumed["details"]["chosen_step"] == straight["details"]["chosen_step"]
