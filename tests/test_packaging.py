"""The package carries its protocols and recipes; the CLI names them; a built wheel works alone."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from ssvbench import cli
from ssvbench import config as config_lib
from ssvbench.evaluators import protocol as protocol_lib

# The fingerprints of the shipped protocols when they still lived in the repository's
# configs/protocols/ (computed before the move into the package). Moving a file must not
# change a single result's fingerprint; a deliberate protocol change updates this table.
FINGERPRINTS = {
    ("hmdb51", None): "df40179a6d1c8e7e209e414cf1db76bf61efdec84bd234c80e2dd1cfac7e4c3d",
    ("hmdb51", "runlocal"): "8f4b337d3515da96235af4e68774a4454997d91a85316dc42b60a1f2ba04dafe",
    ("kinetics400", None): "37c9c4c27a889df2fc6c26f00189e9a894f883e72ee9a85e478c53a696df4ee1",
    ("kinetics400", "runlocal"):
        "c038f4896b29fa2892ad9e9765d8f1976e234958f183539336921950b65f3ba5",
    ("kinetics600", None): "490d60500fcda1e753e34e86ab30f8a32bc0030f0b239b2d1048f7af030db778",
    ("kinetics600", "runlocal"):
        "46d55becf4c02d5b1e90d6fc43a78db45ef66ee82707995b94b7a47d48c11919",
    ("kinetics700", None): "7fdd520b17f33121d43a5fee611e29067e47f532087160f99477a5dc20142a7c",
    ("kinetics700", "runlocal"):
        "fc58ebca1c3f9747c5e902a0fdc8e0958ed3de8d1607fa832c6c872667e24ddd",
    # 3.0 (the v3 SynthActions default); 2.0, the previous default, stays loadable as v2.
    ("synthactions", None): "3a9e952a241f2df1a5714ffe016976b5ed114307251348990b9cde6227bc36c6",
    ("synthactions", "runlocal"):
        "2f7a66fb23192cb97ab2b44240dc9ecf522d6c392ddb6f7445b6369a8855b3a6",
    ("synthactions", "v2"): "04f5f666267010ee0801c65e9a789b3d5f6af01005e1f044488fcb51f72ed612",
    ("synthactions", "v1"): "d678f8571e8f4eef9ff174c7dc892f91c17c1780e80cdaad45d14abaf2bfce80",
    ("ucf101", None): "f0e8bc7d86872dcc3bbe4a301156e465cdf948fe78e515dbaaf409dc16ecfe8a",
    ("ucf101", "runlocal"): "31daea9fc8fcbe407161a997fe8ccd543648c86ee9641bf9db9f26b1a62c19a9",
}


def test_shipped_protocols_live_in_the_package_with_unchanged_fingerprints():
  package_dir = pathlib.Path(config_lib.__file__).parent
  assert protocol_lib.PROTOCOL_DIR.parent.parent == package_dir
  assert protocol_lib.available_protocols() == sorted({name for name, _ in FINGERPRINTS})
  for (name, arg), expected in FINGERPRINTS.items():
    assert protocol_lib.fingerprint(protocol_lib.load_protocol(name, arg)) == expected, (name, arg)
  # The documented repository paths still name the shipped files.
  by_path = protocol_lib.load_protocol("configs/protocols/ucf101.py:runlocal")
  assert protocol_lib.fingerprint(by_path) == FINGERPRINTS[("ucf101", "runlocal")]


def test_recipes_resolve_by_name_and_by_documented_path():
  recipes = config_lib.available_recipes()
  assert "simclr_r3d_synthactions" in recipes and "videomae_vit3d_synthactions" in recipes
  by_name = config_lib.load_config("simclr_r3d_synthactions:runlocal")
  by_path = config_lib.load_config("configs/pretrain/simclr_r3d_synthactions.py:runlocal")
  assert by_name.to_dict() == by_path.to_dict()
  assert config_lib.resolve_config_path("configs/quickstart.py").is_file()
  with pytest.raises(config_lib.ConfigError, match="shipped recipes: .*simclr_r3d_synthactions"):
    config_lib.resolve_config_path("simclr_r3d_synthaction")


def test_cli_version_and_help_list_shipped_names(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--version"])
  assert exit_info.value.code == 0
  import ssvbench
  assert capsys.readouterr().out.strip() == f"ssvbench {ssvbench.__version__}"
  with pytest.raises(SystemExit):
    cli.main(["pretrain", "--help"])
  help_text = " ".join(capsys.readouterr().out.split())
  for recipe in config_lib.available_recipes():
    assert recipe in help_text
  with pytest.raises(SystemExit):
    cli.main(["evaluate", "--help"])
  help_text = " ".join(capsys.readouterr().out.split())
  for name in protocol_lib.available_protocols():
    assert name in help_text
