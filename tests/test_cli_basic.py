import subprocess
import sys

from facegate import __version__


def test_version_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "facegate", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == __version__
