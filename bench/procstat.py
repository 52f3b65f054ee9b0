"""CPU seconds and memory of a server and every process under it, from /proc.

A server is its whole process tree: uvicorn's workers are children of the supervisor, and
Triton's python backend runs each model instance in a stub process under tritonserver.
"""

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))):
            children.setdefault(int(stat[1]), []).append(int(entry))  # field 4: ppid
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of the tree, plus what its reaped children used (cutime + cstime)."""
    total = 0
    for each in tree(pid):
        if stat := _stat(each):
            total += sum(int(v) for v in stat[11:15])  # fields 14-17
    return total / TICKS


def own_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` alone (0 once it is gone)."""
    stat = _stat(pid)
    return (int(stat[11]) + int(stat[12])) / TICKS if stat else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float | None:
    """Proportional set size: shared pages (libraries, forked memory) split between sharers."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return None


def listens(pid: int, port: int) -> bool:
    """Whether a process of `pid`'s tree holds the socket listening on TCP `port`."""
    wanted = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()  # local address is HEXIP:HEXPORT, state 0A is LISTEN, field 10 the inode
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                wanted.add(f"socket:[{fields[9]}]")
    for each in tree(pid):
        try:
            links = os.listdir(f"/proc/{each}/fd")
        except (FileNotFoundError, PermissionError):
            continue
        for fd in links:
            try:
                if os.readlink(f"/proc/{each}/fd/{fd}") in wanted:
                    return True
            except OSError:
                continue
    return False
