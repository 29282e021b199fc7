"""`cohortflow worker`: one worker process, or N of them under one parent (``--processes``).

Each process is a member of the consumer group, so the N processes share the
partitions as N separately started workers would; the parent restarts one
that dies and passes SIGTERM on (:func:`cohortflow.processes.supervise`).
With N processes the parent serves the one ``/metrics`` endpoint: the
children write their samples to files (prometheus_client's multiprocess
mode) and the parent sums counters and histograms over them; gauges keep the
most recent value of a live process, or their sum for the cached entities.
"""

from __future__ import annotations

import logging
from multiprocessing.synchronize import Event

from cohortflow.processes import MULTIPROC_DIR, shared_metrics, summed_registry, supervise
from cohortflow.settings import Settings, load_settings

__all__ = ["MULTIPROC_DIR", "run_worker", "run_workers"]


def run_worker(settings: Settings, serve_metrics: bool, started: Event | None = None) -> None:
    """One worker in this process until SIGTERM/SIGINT (``started`` is set once it has started)."""
    import faust

    from cohortflow.pipeline.app import create_app
    from cohortflow.pipeline.metrics import PrometheusObserver

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    observer = PrometheusObserver()
    if serve_metrics and settings.metrics_port:
        observer.serve(settings.metrics_port)
    app = create_app(settings, observer, on_started=started.set if started is not None else None)
    level = {"warning": "warn", "error": "error", "debug": "debug"}.get(settings.log_level, "info")
    faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False).execute_from_commandline()


def _child(started: Event) -> None:
    # Spawned: the settings come from the environment again, as they did for the parent.
    run_worker(load_settings(), serve_metrics=False, started=started)


def run_workers(settings: Settings, processes: int, serve_metrics: bool) -> None:
    """``processes`` workers under this process until SIGTERM/SIGINT; ``/metrics`` of all of them here."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    grace = 2 * settings.session_timeout_seconds + 15
    if not (serve_metrics and settings.metrics_port):
        supervise(_child, (), processes, name="cohortflow-worker", grace=grace)
        return
    with shared_metrics() as (metrics_dir, on_exit):
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, registry=summed_registry(metrics_dir))
        supervise(_child, (), processes, name="cohortflow-worker", grace=grace, on_exit=on_exit)
