"""`cohortflow api --workers N`: every process has a socket of its own, connections spread over them, and any
process's /metrics counts the requests of them all."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def _listening_children(url: str) -> tuple[int, int, list[int]]:
    """(port, parent pid, the two API processes) once both listen: the URL answers as soon as one does."""
    port = int(url.rsplit(":", 1)[1])
    parent = _api_pid(port)
    children = _children(parent)
    assert len(children) == 2
    deadline = time.monotonic() + 30
    while not all(len(_sockets(child, port)[0]) == 1 for child in children):
        assert time.monotonic() < deadline, [_sockets(child, port) for child in children]
        time.sleep(0.1)
    return port, parent, children


def _live_probes(port: int, count: int) -> list[socket.socket]:
    """``count`` keep-alive connections, opened in a burst like a proxy's, each having read one 200 of /health/live."""
    clients = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b" 200 " in sock.recv(4096)[:16]
        clients.append(sock)
    return clients


def test_workers_each_listen_and_share_the_connections_and_a_dead_one_is_replaced(stack: Settings,
                                                                                    tmp_path: Path) -> None:
    with served(stack, tmp_path / "api.log", "--workers", "2") as url:
        port, parent, children = _listening_children(url)
        clients = _live_probes(port, 32)
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


def _live_requests_counted(url: str) -> float:
    """What one scrape of /metrics (a new connection: either process may answer) counts of GET /health/live."""
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "cohortflow_api_requests" for sample in family.samples
               if sample.name == "cohortflow_api_requests_total" and sample.labels["route"] == "/health/live")


def test_any_process_scraped_counts_the_requests_every_process_served(stack: Settings, tmp_path: Path) -> None:
    with served(stack, tmp_path / "api.log", "--workers", "2") as url:
        port, _, children = _listening_children(url)
        clients = _live_probes(port, 32)
        served_by = [_sockets(child, port)[1] for child in children]
        assert min(served_by) >= 1, served_by  # both served some: a per-process count would be short of 32
        for sock in clients:
            sock.close()
        # served()'s own readiness probes count as well; then every scrape, whichever process it reaches, agrees
        scrapes = [_live_requests_counted(url) for _ in range(12)]
        assert len(set(scrapes)) == 1 and scrapes[0] >= 32, (scrapes, served_by)
