"""`cohortflow api --workers N`: every process has a socket of its own, connections spread over them."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from cohortflow.settings import Settings
from tests.api.helpers import served

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    """The API processes the parent started (not multiprocessing's resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            continue
    return found


def _api_pid(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"cohortflow.cli" in command and b"api" in command and str(port).encode() in command:
                return int(entry.name)
    raise AssertionError(f"no `cohortflow api --port {port}` process")


def _sockets(pid: int, port: int) -> tuple[frozenset[str], int]:
    """(inodes of the listening sockets, number of established connections) of ``pid`` on local ``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening, established = set(), 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[9] in inodes:
            if fields[3] == "0A":
                listening.add(fields[9])
            established += fields[3] == "01"
    return frozenset(listening), established


def test_workers_each_listen_and_share_the_connections_and_a_dead_one_is_replaced(stack: Settings,
                                                                                    tmp_path: Path) -> None:
    with served(stack, tmp_path / "api.log", "--workers", "2") as url:
        port = int(url.rsplit(":", 1)[1])
        parent = _api_pid(port)
        children = _children(parent)
        assert len(children) == 2
        deadline = time.monotonic() + 30  # the URL answers once one process listens; wait for the other too
        while not all(len(_sockets(child, port)[0]) == 1 for child in children):
            assert time.monotonic() < deadline, [_sockets(child, port) for child in children]
            time.sleep(0.1)
        clients = []
        for _ in range(32):  # keep-alive connections, opened in a burst like a proxy's
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b" 200 " in sock.recv(4096)[:16]
            clients.append(sock)
        counts = [_sockets(child, port) for child in children]
        (first, _), (second, _) = counts
        assert len(first) == len(second) == 1 and first != second, counts  # a socket each, not one shared
        assert sum(n for _, n in counts) == 32 and min(n for _, n in counts) >= 4, counts  # 16 +- 4 expected
        for sock in clients:
            sock.close()

        os.kill(children[0], signal.SIGKILL)  # out of memory, say: the parent starts another
        deadline = time.monotonic() + 30
        while True:
            now = _children(parent)
            if len(now) == 2 and children[0] not in now and len(_sockets(now[-1], port)[0]) == 1:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.2)
        assert all(httpx.get(f"{url}/health/live").status_code == 200 for _ in range(10))
    assert not any(Path(f"/proc/{pid}").exists() for pid in (parent, *children, *now))  # SIGTERM stopped them all
