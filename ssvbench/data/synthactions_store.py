"""SynthActions from generator to prepared store: generate, prepare, and write the class
subsets file evaluation reads.

Why here and not in quickstart: `ssvbench prepare synthactions`, the quickstart and the
tests all make a SynthActions store the same way; it is data preparation, so it sits in
data/ where every caller above can reach it.
"""

from __future__ import annotations

import json
import pathlib

from ssvbench.data import prepare, sources, synthactions

# Written beside the manifest: named class subsets whose accuracy is reported separately
# (e.g. the motion-only classes); read by ssvbench.evaluate.
CLASS_SUBSETS_FILE = "class_subsets.json"


def write_class_subsets(store_dir: pathlib.Path, synth_config) -> None:
  subsets = {"motion_only": synthactions.motion_only_classes(synth_config)}
  (pathlib.Path(store_dir) / CLASS_SUBSETS_FILE).write_text(json.dumps(subsets, indent=2) + "\n")


def prepare_synthactions(config, data_dir: pathlib.Path, progress: bool = True) -> pathlib.Path:
  """Generates and prepares SynthActions under data_dir; returns the store directory.

  `config` has `synth` (the generator config) and `prepare` (short_side, fps, workers),
  as the quickstart config does.
  """
  source_dir = data_dir / "source"
  synthactions.generate(source_dir, config.synth, progress=progress)
  store_dir = data_dir / "store"
  if not (store_dir / "manifest.json").is_file():
    index, find_video = sources.load_index("synthactions", source_dir / "videos",
                                           source_dir / "ucfTrainTestlist")
    prepare.prepare_dataset(index, source_dir / "videos", store_dir, find_video=find_video,
                            short_side=config.prepare.short_side or None,
                            fps=config.prepare.fps or None, num_workers=config.prepare.workers,
                            progress=progress)
  write_class_subsets(store_dir, config.synth)
  return store_dir
