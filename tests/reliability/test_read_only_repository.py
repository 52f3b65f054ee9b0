"""A read-only model repository: the service loads, serves, polls and reloads from it, and
writes nothing into it.

Tests run as root here, which writes through permission bits; so the server runs without
capabilities (setpriv), as the user who owns the checkout, on a copy made unwritable (chmod -R
a-w), behind a read-only bind mount where the kernel allows one (unshare -m), and the test
compares a full listing of the repository (modes, sizes, mtimes, ctimes, content hashes) before
and after.

Not as `nobody`: it cannot enter a checkout cloned into a private folder (a 0700 home or
`mktemp -d`), nor reach its .venv. A process without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and
CAP_FOWNER is held to permission bits whatever its uid, and the checkout's owner can run it.
"""

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests import onnx_models
from tests.conftest import ROOT, Server, skip_for_missing_tool
from tests.reliability.load import ONE, wait_for

# $0 is the repository, "$@" the server's command: mount it read-only over itself, then run.
READ_ONLY_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'


def listing(root: Path) -> dict[str, tuple]:
    """Every file and folder under root, with what a write would change."""
    found = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, content)
    return found


def confinement(repo: Path) -> list[str]:
    """The command prefix that keeps the server from writing into `repo`."""
    if os.geteuid() != 0:
        return []  # an ordinary user cannot write through chmod a-w
    if shutil.which("setpriv") is None:
        skip_for_missing_tool("setpriv", "util-linux: as root, the server must drop privileges")
    owner = ROOT.stat()
    prefix = ["setpriv", f"--reuid={owner.st_uid}", f"--regid={owner.st_gid}", "--clear-groups",
              "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    if subprocess.run([*prefix, "true"], check=False, capture_output=True).returncode != 0:
        pytest.skip("running as root where setpriv cannot drop capabilities: cannot prove the point")
    if shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], check=False, capture_output=True).returncode == 0:
        prefix = ["unshare", "-m", "sh", "-c", READ_ONLY_MOUNT, str(repo), *prefix]
    return prefix


@pytest.fixture
def repo():
    # Not under pytest's tmp_path: its parents are closed to other users, such as the
    # checkout's owner when that is not root.
    top = Path(tempfile.mkdtemp(prefix="modelserve-ro-"))
    top.chmod(0o755)
    repo = top / "models"
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m", version=1)
    onnx_models.save(onnx_models.add_constant(2.0), repo, "m", version=2)
    (repo / "m" / "config.yaml").write_text("version_policy: {all: {}}\nmax_batch_size: 4\n")
    (repo / "m" / "2" / "card.json").write_text('{"seed": 0}')
    onnx_models.save(onnx_models.add_constant(0.0), repo, "broken").write_bytes(b"not onnx")
    for path in [repo, *repo.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield repo
    for path in [repo, *repo.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(top)


@pytest.mark.parametrize("mode", ["poll", "explicit"])
def test_the_service_never_writes_into_a_read_only_repository(repo, mode):
    before = listing(repo)
    args = ["--model-control-mode", mode, "--repository-poll-secs", "0.2", "--load-model", "*"]
    server = Server(repo, env={"MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS": "true"}, args=args,
                    prefix=confinement(repo))
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for version in ("1", "2"):
                response = client.post(f"/v2/models/m/versions/{version}/infer", json=ONE)
                assert response.json()["outputs"][0]["data"] == [1.0 + float(version)]
            assert client.get("/v2/models/m").status_code == 200
            assert client.get("/v2/models/m/stats").status_code == 200
            rows = {(r["name"], r["version"]): r["state"] for r in client.post("/v2/repository/index").json()}
            assert rows[("m", "2")] == "READY" and rows[("broken", "1")] == "UNAVAILABLE"
            if mode == "explicit":  # reload, unload and load again, all from the read-only files
                assert client.post("/v2/repository/models/m/load").status_code == 200
                assert client.post("/v2/repository/models/m/unload").status_code == 200
                assert client.post("/v2/repository/models/m/load").status_code == 200
                assert client.post("/v2/repository/models/broken/load").status_code == 400
            assert client.post("/v2/models/m/infer", json=ONE).json()["outputs"][0]["data"] == [3.0]
        assert server.process.poll() is None, server.log()
    finally:
        server.stop()
    assert listing(repo) == before
    assert "Read-only file system" not in server.log() and "Permission denied" not in server.log()


def test_an_unreadable_model_folder_is_that_models_load_failure(repo):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        skip_for_missing_tool("setpriv", "util-linux: as root, every folder is readable")
    secret = repo / "secret"
    secret.mkdir()
    onnx_models.save(onnx_models.add_constant(0.0), secret.parent, "secret")
    secret.chmod(0o000)  # found by the test above: a PermissionError ended loading for every model
    try:
        server = Server(repo, args=["--model-control-mode", "poll", "--repository-poll-secs", "0.2"],
                        prefix=confinement(repo))
        try:
            server.wait_ready()
            assert httpx.post(f"{server.url}/v2/models/m/infer", json=ONE).json()["outputs"][0]["data"] == [3.0]
            rows = {r["name"]: r for r in httpx.post(f"{server.url}/v2/repository/index").json()}
            assert rows["secret"]["state"] == "UNAVAILABLE" and rows["secret"]["reason"] == "secret/ cannot be read: Permission denied"
            # Polling goes on past it (it used to stop at the first unreadable folder).
            onnx_models.save(onnx_models.add_constant(7.0), repo, "zz")  # root writes through a-w
            wait_for(lambda: httpx.get(f"{server.url}/v2/models/zz/ready").status_code == 200, what="zz loads")
            assert server.process.poll() is None
        finally:
            server.stop()
    finally:
        secret.chmod(0o755)


def test_an_unreadable_repository_serves_nothing_and_says_why(repo):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        skip_for_missing_tool("setpriv", "util-linux: as root, every folder is readable")
    repo.chmod(0o000)
    try:
        server = Server(repo, env={"MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS": "true"},
                        args=["--model-control-mode", "explicit", "--load-model", "*"], prefix=confinement(repo))
        try:
            server.wait_ready()  # ready, as for a missing folder: there is nothing to wait for
            assert httpx.post(f"{server.url}/v2/repository/index").json() == []
            refused = httpx.post(f"{server.url}/v2/repository/models/m/load")
            assert refused.status_code == 503 and "cannot be read" in refused.json()["error"]
            assert httpx.post(f"{server.url}/v2/models/m/infer", json=ONE).status_code == 404
        finally:
            server.stop()
        assert "cannot be read" in server.log()
    finally:
        repo.chmod(0o555)
