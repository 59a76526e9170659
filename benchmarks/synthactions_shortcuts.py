"""Which SynthActions attributes do a run's features encode? The shortcut probe.

Why: on SynthActions a method can solve its pre-training task with whatever a video keeps
constant that the augmentations leave alone (the actor's position, its contrast polarity,
the background's luminance) instead of shape and motion, and then k-NN on test scenes sits
near chance. Accuracy alone does not say which shortcut was taken. This probe does: for
every test video it predicts each generator attribute as the mean over its 10 nearest
training videos (cosine on the protocol's features, averaged over views) and prints the
correlation of prediction and truth. A recipe that works moves weight from the nuisance
rows (x, y, polarity, background luminance, size) to the label and shape rows.

Run on a quickstart directory (or any directory holding data/source, data/store and
runs/<name>/ pre-training workdirs):
  python benchmarks/synthactions_shortcuts.py ssvbench_quickstart
  python benchmarks/synthactions_shortcuts.py ssvbench_quickstart --runs simclr random_init
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

NEIGHBOURS = 10


def video_attributes(source_dir: pathlib.Path, store) -> dict[str, dict[str, np.ndarray]]:
  """Per split, generator attributes of every video in store order, from the seeded scenes."""
  from ssvbench.data import synthactions, synthactions_scenes
  config = json.loads((source_dir / synthactions.METADATA_FILE).read_text())["config"]
  by_split = {}
  for split in ("train", "test"):
    videos = sorted((v for v in store.manifest["videos"]
                     if v["split"] == split and v["status"] == "ok"),
                    key=lambda v: v["record_index"])
    rows = []
    for video in videos:
      class_name, group, clip = video["video_id"].split("/")[1].split("_")[1:]
      shots = synthactions.video_shots(config, class_name, int(group[1:]), int(clip[1:]))
      # A video of several camera shots: each attribute averaged over its frames.
      weights = np.array([frames.stop - frames.start for frames, _ in shots], float)

      def mean(value):
        return float(np.average([value(scene, frames) for frames, scene in shots],
                                weights=weights))
      rows.append(dict(
          label=video["label"],
          shape=float(synthactions_scenes.SHAPES.index(shots[0][1].shape)),
          x=mean(lambda s, f: s.centre_x[f].mean()), y=mean(lambda s, f: s.centre_y[f].mean()),
          size=mean(lambda s, f: s.radius[f].mean()),
          polarity=mean(lambda s, f: float(s.actor_rgb.mean() > s.background_rgb.mean())),
          background_luminance=mean(lambda s, f: float(s.background_rgb.mean()))))
    by_split[split] = {key: np.array([row[key] for row in rows]) for key in rows[0]}
  return by_split


def probe(train_features: np.ndarray, test_features: np.ndarray,
          attributes: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
  """Correlation between each attribute and its 10-NN prediction; 'label' and 'shape' are
  scored as the fraction of neighbours that share the test video's class / shape."""
  def normalise(features):
    pooled = features.mean(axis=1)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
  similarity = normalise(test_features) @ normalise(train_features).T
  neighbours = np.argsort(-similarity, axis=1)[:, :NEIGHBOURS]
  train, test = attributes["train"], attributes["test"]
  scores = {}
  for key in train:
    if key in ("label", "shape"):
      scores[f"{key} (neighbours sharing it)"] = float(
          np.mean(train[key][neighbours] == test[key][:, None]))
    else:
      scores[key] = float(np.corrcoef(train[key][neighbours].mean(axis=1), test[key])[0, 1])
  return scores


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("root", help="directory with data/source, data/store and runs/<name>/")
  parser.add_argument("--runs", nargs="*", default=None, help="run names (default: all)")
  parser.add_argument("--protocol", default="synthactions")
  args = parser.parse_args(argv)

  from ssvbench import runtime
  runtime.configure_jax()
  from ssvbench import evaluate, runs
  from ssvbench.data import store as store_lib
  from ssvbench.evaluators import protocol as protocol_lib

  root = pathlib.Path(args.root)
  store = store_lib.PreparedStore(root / "data" / "store")
  attributes = video_attributes(root / "data" / "source", store)
  spec = protocol_lib.load_protocol(args.protocol)
  names = args.runs or sorted(p.name for p in (root / "runs").iterdir() if p.is_dir())
  for name in names:
    workdir = root / "runs" / name
    _, model, _ = runs.load_trained_model(workdir)
    features = evaluate.extract_run_features(workdir, model, store, spec, progress=False)
    scores = probe(features["train"]["features"], features["test"]["features"], attributes)
    print(f"{name}: " + ", ".join(f"{key} {value:.2f}" for key, value in scores.items()))


if __name__ == "__main__":
  main()
