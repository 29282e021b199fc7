"""The floor and mentor summaries as a plain Faust app, written the way the Faust docs teach.

    PEER_APP_ID=... PEER_TOPIC_PREFIX=cohort. PEER_DSN=postgresql://... PEER_SCHEMA=... \\
        python bench/peers/faust_agent.py worker -l warning

- one ``@app.agent`` per contract topic, ``async for key, value in stream.items()``;
- a ``students`` Table (keyed by the record key, so co-partitioned with the three topics keyed by
  student) holding each student's (and mentor's) state, updated per event;
- the floor and mentor counts live in a ``summaries`` Table keyed by row; because those keys are
  not the records' keys, the deltas are re-keyed through a topic (the docs' ``group_by`` /
  co-partitioning rule), so the app stays correct with several workers;
- each change of a summary row is upserted into PostgreSQL at once (autocommit, one statement
  per event), the way a Faust agent writes to a database.

Configuration (the report repeats it): faust-streaming defaults except ``store="memory://"``
(the default store; cheaper than RocksDB), ``topic_partitions=12`` (the contract's),
``value_serializer="raw"`` (records are decoded with orjson in the agent, so a bad record is
skipped rather than killing the stream), ``web_enabled=False``, ``table_standby_replicas=0``
(no standby copies to maintain, which only helps it). Commits: default ``broker_commit_every``
and ``broker_commit_interval`` (2.8 s). What the folds skip is in ``bench/peers/fold.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import faust
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.peers.fold import FLOOR_DDL, parse, safe_apply, upsert
from bench.peers.fold import apply_delta as add_delta

PREFIX = os.environ.get("PEER_TOPIC_PREFIX", "cohort.")
DSN = os.environ.get("PEER_DSN", "postgresql://cohortflow:cohortflow@127.0.0.1:5432/cohortflow")
SCHEMA = os.environ.get("PEER_SCHEMA", "peer_faust")

app = faust.App(
    os.environ.get("PEER_APP_ID", "peer-faust"),
    broker=f"kafka://{os.environ.get('PEER_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    topic_partitions=12,
    value_serializer="raw",
    web_enabled=False,
    table_standby_replicas=0,
)

roster_topic = app.topic(f"{PREFIX}roster", key_serializer="raw", value_serializer="raw")
submissions_topic = app.topic(f"{PREFIX}submissions", key_serializer="raw", value_serializer="raw")
reviews_topic = app.topic(f"{PREFIX}reviews", key_serializer="raw", value_serializer="raw")
logins_topic = app.topic(f"{PREFIX}logins", key_serializer="raw", value_serializer="raw")
audit_topic = app.topic(f"{PREFIX}audit", key_serializer="raw", value_serializer="raw")
notifications_topic = app.topic(f"{PREFIX}notifications", key_serializer="raw", value_serializer="raw")
deltas_topic = app.topic(f"{app.conf.id}-summary-deltas", key_type=str, value_serializer="json", partitions=12,
                         internal=True)

students = app.Table("students", default=dict, partitions=12)
summaries = app.Table("summaries", default=dict, partitions=12)

_connection: psycopg.AsyncConnection | None = None


async def database() -> psycopg.AsyncConnection:
    global _connection
    if _connection is None or _connection.closed:
        _connection = await psycopg.AsyncConnection.connect(DSN, autocommit=True,
                                                            options=f"-c search_path={SCHEMA}")
        for statement in FLOOR_DDL.split(";"):
            if statement.strip():
                await _connection.execute(statement)
    return _connection


async def fold(stream) -> None:  # a faust.Stream
    """Per event: update the entity in the Table, send its deltas on to the summary rows."""
    async for key, value in stream.items():
        if not key:
            continue
        entity = key.decode("utf-8", "replace")
        state = students[entity]
        deltas = safe_apply(state, value)
        students[entity] = state  # tables see a change only on assignment
        for row_key, delta in deltas:
            await deltas_topic.send(key=row_key, value=delta)


@app.agent(roster_topic)
async def roster(stream) -> None:
    await fold(stream)


@app.agent(submissions_topic)
async def submissions(stream) -> None:
    await fold(stream)


@app.agent(reviews_topic)
async def reviews(stream) -> None:
    await fold(stream)


async def decode_only(stream) -> None:
    """Logins, audit and notifications feed views the peers do not compute: decoded, then dropped."""
    async for value in stream:
        parse(value)


app.agent(logins_topic, name="logins")(decode_only)
app.agent(audit_topic, name="audit")(decode_only)
app.agent(notifications_topic, name="notifications")(decode_only)


@app.agent(deltas_topic)
async def summary_rows(stream) -> None:
    """Per delta: update the row's counts in the Table and upsert the row into PostgreSQL."""
    async for key, delta in stream.items():
        row = summaries[key]
        add_delta(row, delta)
        summaries[key] = row
        statement, params = upsert(key, row)
        await (await database()).execute(statement, params)


if __name__ == "__main__":
    app.main()
