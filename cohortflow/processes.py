"""N copies of a process under one parent: `cohortflow worker --processes N` and `cohortflow api --workers N`.

The parent only supervises. Each child is spawned (a fresh interpreter, so no
connection or thread of the parent leaks into it), told to end when the
parent does (Linux ``PR_SET_PDEATHSIG``: a parent killed with SIGKILL takes
its children with it instead of leaving them running unsupervised), and sets
an event once it is ready. A child that dies after it was ready (killed, out
of memory) is replaced; one that dies before (a port in use, bad settings, a
missing topic) stops the parent with an error, since another would fail the
same way. SIGTERM and SIGINT are passed on for a graceful stop, which each
child gets ``grace`` seconds to finish before it is killed.

Their Prometheus series are shared (:func:`shared_metrics`): each child writes
its samples to files in one directory (prometheus_client's multiprocess mode),
and whoever serves ``/metrics`` sums them, so a scrape sees every process.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

from cohortflow.errors import CohortflowError

if TYPE_CHECKING:  # prometheus_client loads only where metrics are served
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2)
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode: where each process's samples go


class ChildStartError(CohortflowError):
    """A supervised process exited while starting (see its message above: port in use, bad settings...)."""


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def end_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not glibc
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _child(target: Callable[..., None], args: tuple, started: Event) -> None:
    end_with_parent()
    target(*args, started)


def supervise(target: Callable[..., None], args: tuple, count: int, *, name: str, grace: float = 15.0,
              on_exit: Callable[[int], None] | None = None) -> None:
    """Run ``count`` processes of ``target(*args, started)`` until SIGTERM or SIGINT; ``target`` sets ``started``.

    ``on_exit(pid)`` is called for each child that ended (to clean what it left, such as metrics files).
    """
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}

    def start() -> tuple[BaseProcess, Event]:
        started = spawn.Event()
        proc = spawn.Process(target=_child, args=(target, args, started), name=name, daemon=False)
        proc.start()
        return proc, started

    running = [start() for _ in range(count)]
    try:
        while not stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(running):
                if proc.is_alive() or stopping:
                    continue
                if not started.is_set():  # it never got ready: starting another would fail the same way
                    raise ChildStartError(f"a {name} process exited with code {proc.exitcode} while starting")
                log.warning("a %s process (pid %s) exited with code %s; starting another", name, proc.pid,
                            proc.exitcode)
                if on_exit is not None and proc.pid is not None:  # a started process has a pid
                    on_exit(proc.pid)
                running[i] = start()  # it was ready, then died (killed, out of memory): replace it
    finally:
        for proc, _ in running:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc, _ in running:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            if on_exit is not None and proc.pid is not None:
                on_exit(proc.pid)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def shared_metrics() -> Iterator[tuple[str, Callable[[int], None]]]:
    """A fresh directory for the Prometheus samples of the children started inside the block.

    It is put in the environment (:data:`MULTIPROC_DIR`) before any child starts, so
    each inherits it and writes its series there, and removed with the directory at
    the end. Yields ``(path, on_exit)``: ``on_exit(pid)`` (for :func:`supervise`) drops a
    dead child's live gauges; its counters stay in the sums, as Prometheus expects of a
    counter. :func:`summed_registry` reads the sums.
    """
    from prometheus_client import multiprocess

    path = tempfile.mkdtemp(prefix="cohortflow-metrics-")
    os.environ[MULTIPROC_DIR] = path
    try:
        yield path, lambda pid: multiprocess.mark_process_dead(pid, path)
    finally:
        os.environ.pop(MULTIPROC_DIR, None)
        shutil.rmtree(path, ignore_errors=True)


def summed_registry(path: str) -> CollectorRegistry:
    """A registry whose exposition sums every process's samples in ``path`` (a :func:`shared_metrics` directory)."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


def freeze_heap() -> None:
    """Move what start-up built (modules, the app, its schemas) out of the cyclic collector's sight.

    It lives as long as the process; left in, every full collection walks it: a pause of tens of ms
    that lands on whichever requests are in flight, a large part of the API's p99 under load.
    """
    import gc

    gc.collect()
    gc.freeze()
