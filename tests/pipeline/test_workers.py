"""`cohortflow worker --processes N` on the real stack: N group members under one parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cohortflow.cli import cli
from cohortflow.processes import cpu_count
from cohortflow.settings import Settings
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import (
    ROOT,
    Worker,
    environment,
    free_port,
    publish,
    records_of,
    redis_badges,
    wait_caught_up,
    wait_for,
)
from tests.pipeline.test_worker import assert_views_match, expected_badges, scrape


def test_two_processes_share_the_log_survive_a_killed_child_and_stop_on_sigterm(stack: Settings,
                                                                              tmp_path: Path) -> None:
    log = adversarial_log(seed=31, size=30_000, contract=stack.contract)
    half = len(log) // 2
    port = free_port()
    worker = Worker(stack, tmp_path / "worker.log", processes=2, COHORTFLOW_METRICS_PORT=str(port)).start()
    try:
        children = wait_for(lambda: len(worker.children()) == 2 and worker.children(), 60, "two children")
        asyncio.run(publish(stack, records_of(log[:half])))
        wait_caught_up(stack, timeout=300, workers=[worker])
        assert_views_match(stack, valid_events(log[:half]))

        os.kill(children[0], signal.SIGKILL)  # the parent starts another; the group hands its partitions on
        wait_for(lambda: len(worker.children()) == 2 and children[0] not in worker.children(), 60,
                 "a replacement child")
        asyncio.run(publish(stack, records_of(log[half:])))
        wait_caught_up(stack, timeout=300, workers=[worker])
        events = valid_events(log)
        assert_views_match(stack, events)
        assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == expected_badges(events)

        # One /metrics for the processes: the survivor's counts and the replacement's add up (the killed
        # child's are gone with it, so at least the second half's events are counted).
        metrics = wait_for(lambda: scrape(port), 10, "metrics")
        counted = sum(v for k, v in _labelled(port).items() if k.startswith("cohortflow_records_total{"))
        assert counted >= len(valid_events(log[half:])), (counted, metrics)

        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(60) == 0
        assert worker.children() == []
    finally:
        worker.stop()


def _labelled(port: int) -> dict[str, float]:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_a_child_that_cannot_start_stops_the_parent_with_a_clear_error(stack: Settings, tmp_path: Path) -> None:
    env = environment(stack, COHORTFLOW_TOPIC_PREFIX="nosuchtopics.")
    done = subprocess.run([sys.executable, "-m", "cohortflow.cli", "worker", "--processes", "2"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "cohortflow-worker process exited" in done.stderr and "while starting" in done.stderr
    assert "cohortflow topics ensure" in done.stderr + done.stdout  # the child said why


def test_processes_option_takes_a_count_or_auto() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0 and "--processes" in result.output and "auto" in result.output
    for bad in ("0", "257", "many"):
        result = runner.invoke(cli, ["worker", "--processes", bad])
        assert result.exit_code == 2 and "expected a number of processes (1-256) or 'auto'" in result.output
    from cohortflow.cli import ProcessCount

    assert ProcessCount().convert("auto", None, None) == cpu_count() >= 1
    assert ProcessCount().convert("3", None, None) == 3


def test_a_sigterm_while_an_assignment_waits_on_the_consumer_thread_stops_the_worker_cleanly(
        stack: Settings, tmp_path: Path) -> None:
    """The stop waits for the assignment in progress, so Faust never cancels it mid-call (exit 0, no crash).

    Seen by chance in test_scale_out before: the stop either hung for good or crashed with CancelledError.
    """
    log = adversarial_log(seed=37, size=3_000, contract=stack.contract)
    asyncio.run(publish(stack, records_of(log)))
    worker = Worker(stack, tmp_path / "worker.log", module="tests.pipeline.slow_consumer",
                    SLOW_EARLIEST_SECONDS="4").start()
    try:
        wait_for(lambda: b"SLOW earliest_offsets" in worker.log.read_bytes(), 60,
                 "an assignment waiting on the consumer thread", [worker])
        time.sleep(1.0)  # well inside the 4 s the call takes
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(60)
        text = worker.log.read_text()
        assert code == 0, text[-3000:]
        assert "CancelledError" not in text and "crash" not in text.lower(), text[-3000:]
        assert "Faust did not stop" not in text, text[-3000:]  # stopped by itself, not ended by the timer
    finally:
        worker.stop()

    # Nothing was lost: a worker started again folds the whole log.
    worker = Worker(stack, tmp_path / "again.log").start()
    try:
        wait_caught_up(stack, timeout=120, workers=[worker])
        assert_views_match(stack, valid_events(log))
    finally:
        worker.stop()


def test_a_sigterm_while_the_group_rebalances_between_callbacks_stops_the_worker_cleanly(
        stack: Settings, tmp_path: Path) -> None:
    """A stop while Faust's ``app.rebalancing`` is set (the group joining, no callback running) exits 0.

    Faust's fetcher takes any cancel during a rebalance for a rebalance restart and crashed the app, so the stop
    ended with exit 1 (seen by chance in test_scale_out on CI, when the third worker left the group).
    """
    log = adversarial_log(seed=41, size=3_000, contract=stack.contract)
    asyncio.run(publish(stack, records_of(log)))
    first = Worker(stack, tmp_path / "first.log", module="tests.pipeline.slow_consumer",
                   SLOW_EARLIEST_SECONDS="0", SLOW_REVOKED_SECONDS="6").start()
    second = Worker(stack, tmp_path / "second.log", COHORTFLOW_METRICS_PORT=str(free_port()))
    try:
        wait_caught_up(stack, timeout=120, workers=[first])  # its fetcher runs
        second.start()  # a member joins: the first one's partitions are revoked, then it waits 6 s to rejoin
        wait_for(lambda: first.log.read_bytes().count(b"SLOW after revoke") >= 2, 60,
                 "the group rebalancing after the first worker's revocation callback", [first, second])
        time.sleep(1.0)  # well inside the 6 s the join is held
        first.proc.send_signal(signal.SIGTERM)
        code = first.proc.wait(60)
        text = first.log.read_text()
        assert code == 0, text[-3000:]
        assert "CancelledError" not in text and "crash" not in text.lower(), text[-3000:]

        # Nothing was lost: the second worker, alone in the group, folds the rest of the log.
        more = adversarial_log(seed=43, size=2_000, contract=stack.contract)
        asyncio.run(publish(stack, records_of(more)))
        wait_caught_up(stack, timeout=120, workers=[second])
        assert_views_match(stack, valid_events(log) + valid_events(more))
    finally:
        first.stop()
        second.stop()
