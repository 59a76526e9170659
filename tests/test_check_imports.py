"""tools/check_imports.py: the package's imports run downward and form no cycle."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "check_imports.py"


def _check(*args):
  return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                        text=True, timeout=120)


def test_the_package_has_no_upward_import_and_no_cycle():
  done = _check()
  assert done.returncode == 0, done.stdout + done.stderr
  assert " 0 violation(s)" in done.stdout


def _write(root, files):
  for name, text in files.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_upward_imports_and_cycles_are_reported(tmp_path):
  _write(tmp_path, {
      "ssvbench/__init__.py": "",
      "ssvbench/models/__init__.py": "",
      # models (a lower layer) reaching up into train, inside a function: still an edge.
      "ssvbench/models/a.py": "def f():\n  from ssvbench.train import trainer\n",
      "ssvbench/train/__init__.py": "",
      "ssvbench/train/trainer.py": "from ssvbench.models import a\n",
      "ssvbench/data/__init__.py": "",
      "ssvbench/data/x.py": "from ssvbench.data import y\n",
      "ssvbench/data/y.py": "import ssvbench.data.x\n",
  })
  done = _check("--root", tmp_path)
  assert done.returncode == 1
  assert ("upward import: ssvbench/models/a.py:2 ssvbench.models.a (models) imports "
          "ssvbench.train.trainer (train / evaluators)") in done.stdout
  assert "import cycle: ssvbench.data.x <-> ssvbench.data.y" in done.stdout
  assert "import cycle: ssvbench.models.a <-> ssvbench.train.trainer" in done.stdout


def test_a_module_outside_the_layer_table_is_an_error(tmp_path):
  _write(tmp_path, {"ssvbench/__init__.py": "", "ssvbench/newthing.py": ""})
  done = _check("--root", tmp_path)
  assert done.returncode == 1
  assert "module ssvbench.newthing is in no layer; add it to LAYERS" in done.stderr
