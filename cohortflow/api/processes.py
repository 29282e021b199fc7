"""`cohortflow api --workers N`: N uvicorn processes on one port, each with a listening socket of its own.

uvicorn's own ``--workers`` shares one listening socket between the processes, and whichever is
awake first accepts: a dashboard fleet or a proxy opens its keep-alive connections in a burst, so
one process took 70% of them (measured under the 1,000 reads/s benchmark: 42,655 requests against
18,004) and ran near its CPU limit, with the other half idle. Here every process binds its own
socket with ``SO_REUSEPORT``, and the kernel spreads new connections over them by a hash of the
connection (7,298 against 7,387 floor reads under the same load). Only processes of the same user
may bind the port alongside, as the kernel requires for ``SO_REUSEPORT``.

The parent only supervises (:func:`cohortflow.processes.supervise`, as for `cohortflow worker --processes`):
it restarts a process that dies after it served, stops when one cannot start (the port is taken, the
settings are bad), and passes SIGTERM/SIGINT on for a graceful stop. The processes share their metrics
(:func:`cohortflow.processes.shared_metrics`): whichever one a scrape of ``GET /metrics`` reaches answers
with the sums over all of them.
"""

from __future__ import annotations

import importlib.util
import socket
from multiprocessing.synchronize import Event

from cohortflow.processes import ChildStartError, shared_metrics, supervise

ApiStartError = ChildStartError  # the name earlier releases raised


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _serve_one(host: str, port: int, started: Event) -> None:
    """One API process: the app from the COHORTFLOW_* environment on its own socket."""
    import uvicorn

    from cohortflow.api.serve import app  # builds the app and freezes the start-up heap

    config = uvicorn.Config(app, log_level="warning", access_log=False,
                            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    sock = listening_socket(host, port)
    started.set()
    uvicorn.Server(config).run(sockets=[sock])


def serve(host: str, port: int, workers: int) -> None:
    """Run ``workers`` API processes on ``host:port`` until SIGTERM or SIGINT."""
    with shared_metrics() as (_, on_exit):
        supervise(_serve_one, (host, port), workers, name="cohortflow-api", on_exit=on_exit)
