"""A prepared store is a TFDS dataset: TFDS reads it without TensorFlow, ssvbench's pipeline
reads the same records, and stores written before (msgpack records) still load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
from array_record.python import array_record_module

from ssvbench.data import pipeline
from ssvbench.data import store as store_lib

# Run in a fresh interpreter; afterwards TensorFlow must not be among its modules. (ssvbench
# does not depend on TensorFlow; where it is installed anyway, TFDS must still not load it.)
_READ_WITH_TFDS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow_datasets as tfds

    store, data_dir = sys.argv[1], sys.argv[2]
    builder = tfds.builder_from_directory(store)
    out = {"name": builder.info.name, "splits": sorted(builder.info.splits),
           "class_names": builder.info.features["label"].names,
           "metadata": dict(builder.info.metadata or {})}
    source = builder.as_data_source(split="train")
    by_name = tfds.data_source("ssvbench_synthactions", data_dir=data_dir, split="test",
                               download=False)
    out["num_train"], out["num_test"] = len(source), len(by_name)
    examples = [source[i] for i in range(len(source))] + [by_name[0]]
    out["examples"] = [{"video_id": e["video_id"].decode(), "label": int(e["label"]),
                        "frames_sum": [int(np.asarray(f, np.int64).sum()) for f in e["frames"]],
                        "shape": list(np.asarray(e["frames"][0]).shape)} for e in examples]
    out["tensorflow_imported"] = any(m == "tensorflow" or m.startswith("tensorflow.")
                                     for m in sys.modules)
    print(json.dumps(out))
""")


def test_a_prepared_store_reads_back_through_tfds_without_tensorflow(tiny_store, tmp_path):
  store = store_lib.PreparedStore(tiny_store)
  assert store.is_tfds
  # tfds.data_source finds datasets by name under data_dir/<name>/<version>.
  data_dir = tmp_path / "tfds_data"
  (data_dir / "ssvbench_synthactions").mkdir(parents=True)
  os.symlink(tiny_store, data_dir / "ssvbench_synthactions" / store_lib.TFDS_VERSION)
  env = {k: v for k, v in os.environ.items()}
  result = subprocess.run([sys.executable, "-c", _READ_WITH_TFDS, str(tiny_store),
                           str(data_dir)], capture_output=True, text=True, env=env,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  read = json.loads(result.stdout.strip().splitlines()[-1])
  assert not read["tensorflow_imported"]
  assert read["name"] == "ssvbench_synthactions"
  assert read["splits"] == sorted(store.splits)
  assert read["class_names"] == store.class_names
  assert read["metadata"] == {"ssvbench_manifest": "manifest.json",
                              "manifest_hash": store.manifest_hash}
  assert (read["num_train"], read["num_test"]) == (store.num_videos("train"),
                                                   store.num_videos("test"))
  # The same videos, labels and pixels as ssvbench's own reader (TFDS decodes every
  # frame; ssvbench decodes the JPEG bytes it samples).
  expected = []
  for split, positions in (("train", range(store.num_videos("train"))), ("test", [0])):
    source = store.data_source(split)
    for position in positions:
      record = store.decode_record(source[position])
      frames = store.decode_frames(record["frames"], range(len(record["frames"])))
      expected.append({"video_id": record["video_id"], "label": record["label"],
                       "frames_sum": [int(f.astype(np.int64).sum()) for f in frames],
                       "shape": list(frames[0].shape)})
      assert record["video_id"] == store.video_ids(split)[position]
  assert read["examples"] == expected


def test_stores_prepared_before_tfds_still_load(tiny_store, tmp_path):
  """The former layout: `<split>.array_record` of msgpack records, no TFDS files."""
  new = store_lib.PreparedStore(tiny_store)
  legacy_dir = tmp_path / "legacy"
  legacy_dir.mkdir()
  shutil.copy(tiny_store / "manifest.json", legacy_dir / "manifest.json")
  for split in new.splits:
    source = new.data_source(split)
    writer = array_record_module.ArrayRecordWriter(
        str(store_lib.record_path(legacy_dir, split)), "group_size:1")
    for position in range(len(source)):
      writer.write(msgpack.packb(new.decode_record(source[position]), use_bin_type=True))
    writer.close()
  legacy = store_lib.PreparedStore(legacy_dir)
  assert not legacy.is_tfds and legacy.manifest_hash == new.manifest_hash
  assert legacy.record_path("train").name == "train.array_record"
  for split in new.splits:
    got = legacy.decode_record(legacy.data_source(split)[0])
    assert got == new.decode_record(new.data_source(split)[0])
  views = dict(num_temporal_views=2, num_spatial_crops=1, num_frames=4, frame_stride=1,
               crop_size=8)
  batches = [
      next(iter(pipeline.make_eval_dataset(s.data_source("test"), batch_size=4, **views)))
      for s in (legacy, new)]
  np.testing.assert_array_equal(batches[0]["views"], batches[1]["views"])
