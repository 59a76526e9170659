"""The quickstart's printed claim: the SSL-vs-random gaps, their paired interval and the verdict."""

from ssvbench import quickstart


def _record(method, seed, knn, linear):
  return {"method": method, "seeds": {"pretrain": seed, "protocol": 0},
          "metrics": {"knn/top1": knn, "linear/top1": linear}}


def _records(rows):
  return [_record(*row) for row in rows]


def test_verdict_holds_only_when_every_seed_meets_both_margins():
  holds = _records([("random_init", 0, 18.0, 22.0), ("simclr", 0, 30.0, 40.0),
                    ("supervised", 0, 45.0, 55.0),
                    ("random_init", 1, 19.0, 20.0), ("simclr", 1, 29.5, 38.0),
                    ("supervised", 1, 44.0, 50.0)])
  text = quickstart.summary(holds, {"total": 1.0})
  assert "verdict:" in text and "holds for seed(s) 0, 1" in text
  # Mean ± std (n - 1) over the two seeds, with each seed's gap.
  assert "knn/top1: +11.2 ± 1.1 points (mean ± std over 2 seeds: +12.0, +10.5)" in text
  # One seed short on k-NN, and a supervised bound below CVRL: both named.
  fails = _records([("random_init", 0, 18.0, 22.0), ("simclr", 0, 27.9, 40.0),
                    ("supervised", 0, 45.0, 39.0)])
  text = quickstart.summary(fails, {"total": 1.0})
  assert "does NOT hold" in text
  assert "seed 0: CVRL - random knn/top1 +9.9" in text
  assert "seed 0: supervised linear/top1 39.0 below CVRL 40.0" in text


def test_single_seed_gap_without_sidecars_has_no_interval():
  text = quickstart.summary(_records([("random_init", 0, 18.0, 22.0),
                                      ("simclr", 0, 30.0, 40.0)]), {"total": 1.0})
  assert "CVRL vs random init, knn/top1: +12.0 points\n" in text
  assert "verdict" not in text  # No supervised run: no claim about it.
