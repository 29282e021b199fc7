"""`make demo` end to end: dev/demo on the real services shows floor and mentor figures within 60 s, then stops."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from cohortflow.devstack.process import Address, port_open
from cohortflow.settings import Settings
from tests.pipeline.harness import ROOT, environment, free_port


def test_demo_shows_floor_and_mentor_figures_within_60_seconds(stack_settings: Settings, tmp_path: Path) -> None:
    # The real script (migrations, topics, token, honcho with Procfile.demo, watch), on isolated topics, schema,
    # Redis keys and API port; `watch --once` exits 0 once both tables show figures, 1 if none within --wait.
    port = free_port()
    env = environment(stack_settings, COHORTFLOW_API_PORT=str(port), DEMO_DIR=str(tmp_path), DEMO_SEED="7",
                      DEMO_DURATION="2m")
    began = time.monotonic()
    demo = subprocess.Popen([str(ROOT / "dev" / "demo"), "--once", "--wait", "60"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = demo.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        demo.send_signal(signal.SIGINT)  # what Ctrl-C does; the script's trap stops honcho and its processes
        output, _ = demo.communicate(timeout=30)
    elapsed = time.monotonic() - began
    text = output.decode(errors="replace")
    log = (tmp_path / "processes.log").read_text() if (tmp_path / "processes.log").exists() else ""
    assert demo.returncode == 0, f"{text}\n--- processes.log (tail)\n{log[-4000:]}"
    assert f"http://127.0.0.1:{port}/v1/floors" in text and "demo stopped" in text
    first = float(re.search(r"first figures\s+after\s+([\d.]+) s", text).group(1))  # type: ignore[union-attr]
    print(f"demo: first figures {first:.1f} s after the watch started, {elapsed:.1f} s after dev/demo started")
    assert elapsed < 60 + 15, elapsed  # the script returns right after the first figures (plus a clean stop)

    with psycopg.connect(stack_settings.postgres_url) as conn:
        schema = sql.Identifier(stack_settings.postgres_schema)
        floors = conn.execute(sql.SQL("SELECT count(*), sum(students_total), sum(students_assigned), "
                                      "sum(mentors_total) FROM {}.floor_summary").format(schema)).fetchone()
        mentors = conn.execute(sql.SQL("SELECT count(*), sum(assigned_students) FROM {}.mentor_summary")
                               .format(schema)).fetchone()
    assert floors[0] > 0 and floors[1] > 0 and floors[2] > 0 and floors[3] > 0, floors
    assert mentors[0] > 0 and mentors[1] > 0, mentors

    # Everything stopped with it: the API no longer listens, honcho reported each process stopped.
    assert not port_open(Address("127.0.0.1", port))
    for process in ("worker.1", "api.1", "simulator.1"):
        assert re.search(rf"{process} stopped", log), log[-3000:]
