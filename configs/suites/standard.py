"""The standard suite: UCF101 splits 1-3, HMDB51 splits 1-3, Kinetics-400 (frozen features).

Run: ssvbench benchmark --suite configs/suites/standard.py --workdir RUN \
       --store ucf101_split1=data/ucf101/split1 ...   (or edit the default paths below)
     --suite configs/suites/standard.py:runlocal uses the protocols' CPU-sized variants.

One entry per (protocol, official split); each needs a prepared store of that split
(`ssvbench prepare ucf101 --split 2 --out data/ucf101/split2`). `ssvbench benchmark`
checks that each store's manifest records the entry's split, appends one record per
entry, and skips entries already in the results file. `--only NAME ...` runs a subset
(e.g. when Kinetics is not prepared). The rows of `ssvbench leaderboard --table
standard` average the three splits and say so when fewer are present.
"""

import ml_collections


def get_config(arg=None):
  if arg not in (None, "runlocal"):
    raise ValueError(f"standard suite: unknown variant {arg!r}; valid: None, 'runlocal'.")
  variant = ":runlocal" if arg == "runlocal" else ""
  config = ml_collections.ConfigDict()
  config.name = "standard" + (f"_{arg}" if arg else "")
  entries = []
  for dataset in ("ucf101", "hmdb51"):
    for split in (1, 2, 3):
      entries.append(dict(name=f"{dataset}_split{split}", protocol=dataset + variant,
                          store=f"data/{dataset}/split{split}", split=split))
  entries.append(dict(name="kinetics400", protocol="kinetics400" + variant,
                      store="data/kinetics400", split=None))
  config.entries = entries
  return config
