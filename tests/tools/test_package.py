"""Installing vsa puts one top-level package, vsa, into site-packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_only_the_vsa_namespace(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("vsa-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"vsa"}, top
    for sub in ["common", "protocol", "sender", "receiver", "tools"]:
        assert f"vsa/{sub}/__init__.py" in names
    assert "vsa/common/assets/person_signing_webcam.mp4" in names
    assert "vsa/common/assets/base-sr.vsam" in names  # the shipped base: vsend and vsa encode need no --model


def test_console_scripts_are_declared():
    text = (ROOT / "pyproject.toml").read_text()
    for script in ['vsa = "vsa.tools.cli:main"', 'vsend = "vsa.sender.cli:main"', 'vrecv = "vsa.receiver.cli:main"']:
        assert script in text
