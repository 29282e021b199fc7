"""The floor and mentor summaries in Quix Streams 3.x, the way its docs build a stateful pipeline.

    PEER_APP_ID=... PEER_TOPIC_PREFIX=cohort. PEER_DSN=postgresql://... PEER_SCHEMA=... \\
        PEER_STATE_DIR=/tmp/... python bench/peers/quix_app.py

- ``Application`` with a consumer group, ``auto_offset_reset="earliest"``, at-least-once
  (the default) and the default ``commit_interval`` of 5 s; state in RocksDB (the default store)
  under ``PEER_STATE_DIR``, backed by changelog topics (the default: every state write is also
  produced to a compacted topic, so a process that takes over a partition can restore it);
- one ``StreamingDataFrame`` over the three topics keyed by student (``concat``, so they share
  one state store), a stateful ``apply`` per event that folds the entity's state (``state.get``
  / ``state.set``) and ``expand``\\ s into one delta per touched summary row;
- ``group_by`` re-keys the deltas by summary row (Quix's repartition topic), a second stateful
  ``apply`` adds each delta to the row's counts, and a custom ``BatchingSink`` upserts the rows
  into PostgreSQL at each checkpoint (the last version of each row in the batch, one
  ``executemany`` per table); the bundled ``PostgreSQLSink`` only appends rows (and needs psycopg2);
- logins, audit and notifications get their own dataframes that decode and drop the records.

Bad JSON: the JSON deserializer raises and ``on_consumer_error`` skips the record (the docs'
way to drop poison messages). What the folds skip is in ``bench/peers/fold.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
from quixstreams import Application, State
from quixstreams.sinks import BatchingSink, SinkBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.peers.fold import FLOOR, FLOOR_DDL, apply_delta, safe_apply, upsert

PREFIX = os.environ.get("PEER_TOPIC_PREFIX", "cohort.")
DSN = os.environ.get("PEER_DSN", "postgresql://cohortflow:cohortflow@127.0.0.1:5432/cohortflow")
SCHEMA = os.environ.get("PEER_SCHEMA", "peer_quix")


class SummarySink(BatchingSink):
    """Upserts the newest version of each summary row of a checkpoint's batch."""

    def setup(self) -> None:
        self.conn = psycopg.connect(DSN, options=f"-c search_path={SCHEMA}")
        with self.conn.transaction():
            self.conn.execute(FLOOR_DDL)

    def write(self, batch: SinkBatch) -> None:
        latest = {item.key: item.value for item in batch}  # in offset order: the last one wins
        floors = [upsert(k, v) for k, v in latest.items() if k.startswith(FLOOR)]
        mentors = [upsert(k, v) for k, v in latest.items() if not k.startswith(FLOOR)]
        with self.conn.transaction(), self.conn.cursor() as cur:
            for rows in (floors, mentors):
                if rows:
                    cur.executemany(rows[0][0], [params for _, params in rows])


def fold_entity(value: dict, state: State) -> list[dict]:
    entity = state.get("entity", {})
    deltas = safe_apply(entity, value)
    state.set("entity", entity)
    return [{"row": key, "delta": delta} for key, delta in deltas]


def fold_row(value: dict, state: State) -> dict:
    row = apply_delta(state.get("row", {}), value["delta"])
    state.set("row", row)
    return row


def skip(exc: Exception, message, logger) -> bool:
    return True  # a record that is not JSON: drop it and go on


def build() -> Application:
    app = Application(
        broker_address=os.environ.get("PEER_BOOTSTRAP", "127.0.0.1:9092"),
        consumer_group=os.environ.get("PEER_APP_ID", "peer-quix"),
        auto_offset_reset="earliest",
        state_dir=os.environ.get("PEER_STATE_DIR", "/tmp/peer-quix-state"),
        on_consumer_error=skip,
        on_processing_error=skip,
    )

    def topic(name: str):
        return app.topic(f"{PREFIX}{name}", key_deserializer="str", value_deserializer="json")

    students = app.dataframe(topic("roster"))
    students = students.concat(app.dataframe(topic("submissions"))).concat(app.dataframe(topic("reviews")))
    deltas = students.apply(fold_entity, stateful=True, expand=True)
    rows = deltas.group_by(lambda d: d["row"], name="summary-rows").apply(fold_row, stateful=True)
    rows.sink(SummarySink())
    for name in ("logins", "audit", "notifications"):
        app.dataframe(topic(name)).filter(lambda _: False)  # decoded by the deserializer, then dropped
    return app


if __name__ == "__main__":
    build().run()
