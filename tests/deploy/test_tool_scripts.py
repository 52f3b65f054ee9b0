"""`make test` installs nothing unasked: deploy/test-tools.sh says what it would install, and why,
and never calls apt-get outside CI unless INSTALL_TEST_TOOLS=1 (`make test-tools`)."""

import subprocess

from tests.deploy.tools import DEPLOY


def test_outside_ci_the_tools_script_only_says_what_it_would_install(tmp_path):
    bin_dir, called = tmp_path / "bin", tmp_path / "apt-get was called"
    bin_dir.mkdir()
    # As root with apt-get at hand, the case where it used to install straight away.
    for name, body in {"apt-get": f"touch '{called}'", "id": "echo 0"}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    # Only those two on PATH: promtool and docker-compose (in /usr/bin) are missing.
    done = subprocess.run(["/bin/sh", str(DEPLOY / "test-tools.sh")], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert not called.exists()
    assert "prometheus docker-compose" in done.stdout and "not installing unasked" in done.stdout
    assert "`make test-tools`" in done.stdout
