"""The built wheel works outside the repository (slow: builds, installs, runs the CLI).

The wheel is built from this checkout and installed with --no-deps into a fresh venv
whose only other packages are those of the venv running the tests (a .pth line adds
that venv's site-packages: the same dependency versions, without downloading them
again; a check then verifies that the wheel's declared dependencies are all there).
Everything runs from an empty temporary folder with PYTHONPATH unset, so nothing can be
read from the repository: the protocols and recipes must come from the installed wheel.
"""

from __future__ import annotations

import json
import os
import pathlib
import site
import subprocess
import sys
import venv

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
_CHECK_REQUIREMENTS = """
from importlib.metadata import requires, version
from packaging.requirements import Requirement
for line in requires("ssvbench"):
  requirement = Requirement(line)
  if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
    found = version(requirement.name)
    assert requirement.specifier.contains(found, prereleases=True), (line, found)
"""


def _run(args, cwd, env, timeout=1800):
  result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
  assert result.returncode == 0, (f"{' '.join(map(str, args))} exited {result.returncode}\n"
                                  f"stdout: {result.stdout[-3000:]}\nstderr: "
                                  f"{result.stderr[-3000:]}")
  return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  root = tmp_path_factory.mktemp("wheel")
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  dist = root / "dist"
  _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, REPO],
       cwd=root, env=env)
  (wheel,) = dist.glob("ssvbench-*.whl")
  target = root / "venv"
  venv.EnvBuilder(with_pip=True).create(target)
  python = target / "bin" / "python"
  purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                 cwd=root, env=env).strip()
  (pathlib.Path(purelib) / "_test_deps.pth").write_text(
      "\n".join(site.getsitepackages()) + "\n")
  _run([python, "-m", "pip", "install", "--no-deps", "--quiet", wheel], cwd=root, env=env)
  work = root / "empty"
  work.mkdir()
  where = _run([python, "-c", "import ssvbench; print(ssvbench.__file__)"], cwd=work, env=env)
  assert pathlib.Path(where.strip()).is_relative_to(target), where  # Not the checkout.
  # The wheel's declared runtime dependencies are all present, at versions it accepts.
  _run([python, "-c", _CHECK_REQUIREMENTS], cwd=work, env=env)
  return target / "bin" / "ssvbench", work, env


@pytest.mark.slow
def test_wheel_evaluates_features_with_a_shipped_protocol(installed):
  ssvbench, work, env = installed
  assert "ucf101" in _run([ssvbench, "evaluate", "--help"], cwd=work, env=env)
  assert "simclr_r3d_synthactions" in _run([ssvbench, "pretrain", "--help"], cwd=work, env=env)
  rng = np.random.default_rng(0)
  centres = rng.standard_normal((101, 16)).astype(np.float32)
  for split, per_class in (("train", 8), ("test", 3)):
    labels = np.repeat(np.arange(101), per_class)
    features = centres[labels] + 0.5 * rng.standard_normal((len(labels), 16)).astype(np.float32)
    groups = np.asarray([f"c{label}_g{i % 4}" for i, label in enumerate(labels)])
    np.savez(work / f"{split}.npz", features=features, labels=labels, groups=groups)
  out = _run([ssvbench, "evaluate-features", "--protocol", "ucf101", "--train", "train.npz",
              "--test", "test.npz"], cwd=work, env=env)
  result = json.loads(out)
  assert result["protocol"]["name"] == "ucf101"
  assert result["metrics"]["linear/top1"] > 50  # Separable clusters: far above 1/101.


@pytest.mark.slow
def test_wheel_runs_a_tiny_quickstart(installed):
  ssvbench, work, env = installed
  _run([ssvbench, "quickstart", "--workdir", "qs", "--fresh",
        "--config.synth.num_groups=3", "--config.synth.num_test_groups=1",
        "--config.synth.clips_per_group=2", "--config.synth.num_frames=16",
        "--config.prepare.workers=1", "--config.pretrain.model.backbone=r3d_tiny",
        "--config.pretrain.train.batch_size=8", "--config.steps.simclr=2",
        "--config.steps.supervised=2", "--config.protocol=synthactions:runlocal"],
       cwd=work, env=env)
  records = [json.loads(line) for line in (work / "qs" / "results.jsonl").read_text().splitlines()]
  assert sorted(r["method"] for r in records) == ["random_init", "simclr", "supervised"]
