"""Process, package and port plumbing shared by the local services."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cohortflow.errors import StackError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def port_open(address: Address, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``address``."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll ``check`` until it holds or ``timeout`` seconds pass (then raise, quoting the log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise StackError(f"{what} was not ready after {timeout:.0f} s" + (f"\n{tail(log)}" if log else ""))


def tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"last lines of {path}:\n  " + "\n  ".join(text)


def run(cmd: Sequence[str], *, what: str, user: str | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a command to completion; raise :class:`StackError` with its output when it fails."""
    full = as_user(user, cmd)
    try:
        done = subprocess.run(full, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    except FileNotFoundError as exc:
        raise StackError(f"{what}: {full[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: timed out after {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise StackError(f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


def as_user(user: str | None, cmd: Sequence[str]) -> list[str]:
    """Prefix ``cmd`` so it runs as ``user`` when we are root and it is somebody else."""
    if user is None or os.geteuid() != 0 or user == "root":
        return list(cmd)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", user, "--", *cmd]


def spawn(cmd: Sequence[str], log: Path, pidfile: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start a long-running server detached from this session; record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    return proc.pid


def running_pid(pidfile: Path) -> int | None:
    """The pid recorded in ``pidfile`` if that process is still alive."""
    try:
        pid = int(pidfile.read_text().strip().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def terminate(pidfile: Path, what: str, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after ``timeout``; True when something was stopped."""
    pid = running_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        _reap(pid)
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def ensure_debian_packages(packages: Sequence[str], binaries: Sequence[str]) -> None:
    """Install Debian ``packages`` unless every one of ``binaries`` exists already.

    Services the packages would start on their own are held back by
    ``policy-rc.d`` where the machine has one; ours are started by dev/services.
    """
    if all(Path(b).exists() or shutil.which(b) for b in binaries):
        return
    sudo: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise StackError(f"{', '.join(packages)} missing and not root: install them with apt-get")
        sudo = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    try:
        run(install, what=f"apt-get install {' '.join(packages)}", env=env)
    except StackError:
        run([*sudo, "apt-get", "update", "-q"], what="apt-get update", env=env)
        run(install, what=f"apt-get install {' '.join(packages)}", env=env)


def owned_dir(path: Path, user: str | None) -> Path:
    """Create ``path`` and give it to ``user`` (when we are root), so a server running as that user can write it."""
    path.mkdir(parents=True, exist_ok=True)
    if user and os.geteuid() == 0 and user != "root":
        entry = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)
    return path
