"""The read API on the real stack: the rows the worker wrote, ETags, scopes, limits, errors, SSE."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from cohortflow.contract import encode, record_key
from cohortflow.contract.events import AuditRecorded, AuditRecordedData, NotificationCreated, NotificationCreatedData
from cohortflow.settings import Settings, load_settings
from cohortflow.stores import audit
from tests import oracle
from tests.api.helpers import body, client, db_rows, ingest, isolated_stack, served, token, walk
from tests.pipeline.harness import Worker, publish, wait_caught_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list]]:
    """Views and badges a real worker wrote from an adversarial log, and the log's valid events."""
    with isolated_stack(api_rate_limit=1_000_000) as settings:  # one token reads every badge
        yield settings, ingest(settings, tmp_path_factory.mktemp("api"), seed=41, size=6_000)


async def test_every_view_route_returns_exactly_the_rows_the_worker_wrote(ingested: tuple[Settings, list]) -> None:
    s, events = ingested
    everything = token(s, "views:read")
    floors = db_rows(s, "SELECT * FROM floor_summary ORDER BY campus, floor")
    mentors = db_rows(s, "SELECT * FROM mentor_summary ORDER BY mentor_id")
    days = db_rows(s, "SELECT * FROM global_daily ORDER BY date")
    current = db_rows(s, "SELECT * FROM global_current")
    assert len(floors) > 3 and len(mentors) > 3 and len(days) > 3
    async with client(s) as http:
        assert await walk(http, "/v1/floors", everything, limit=2) == floors
        assert await walk(http, "/v1/mentors", everything, limit=3) == mentors
        campus = floors[0]["campus"]
        assert await walk(http, "/v1/floors", everything, limit=1, campus=campus) == \
            [f for f in floors if f["campus"] == campus]
        assert await walk(http, "/v1/mentors", everything, limit=50, workload="low", active="true") == \
            [m for m in mentors if m["workload"] == "low" and m["active"] is True]
        one = floors[-1]
        got = await http.get(f"/v1/floors/{one['campus']}/{one['floor']}", headers=everything)
        assert body(got) == one and got.headers["cache-control"] == "private, no-cache"
        assert body(await http.get(f"/v1/mentors/{mentors[1]['mentor_id']}", headers=everything)) == mentors[1]
        assert body(await http.get("/v1/global", headers=everything)) == current[0]
        daily = body(await http.get("/v1/global/daily", headers=everything))
        assert daily["items"] == days and daily["as_of"] == max(d["as_of"] for d in days)
        window = body(await http.get("/v1/global/daily", headers=everything,
                                     params={"from": days[2]["date"], "to": days[4]["date"]}))
        assert window["items"] == days[2:5]

        # Badges: what the worker wrote to Redis, which is what the oracle computes from the log.
        wanted = oracle.badges(events)
        assert len(wanted) > 20
        for user_id, badge in wanted.items():
            got = await http.get(f"/v1/notifications/{user_id}", headers=everything)
            assert got.json() == {"user_id": user_id, **badge}, user_id
        assert (await http.get("/v1/notifications/nobody", headers=everything)).json() == \
            {"user_id": "nobody", "unread": 0}

        # A strong ETag: the same bytes give 304, a changed row a new tag.
        first = await http.get("/v1/global", headers=everything)
        tag = first.headers["etag"]
        assert tag.startswith('"') and not tag.startswith("W/")
        again = await http.get("/v1/global", headers={**everything, "If-None-Match": tag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
        with psycopg.connect(s.postgres_url, autocommit=True, options=f"-c search_path={s.postgres_schema}") as c:
            c.execute("UPDATE global_counts SET students_total = students_total + 1, updated_at = now()")
        changed = await http.get("/v1/global", headers={**everything, "If-None-Match": tag})
        assert changed.status_code == 200 and changed.headers["etag"] != tag
        assert body(changed)["students_total"] == current[0]["students_total"] + 1

        # Freshness: every partition caught up, each view's age.
        fresh = body(await http.get("/v1/freshness", headers=everything))
        assert fresh["total_lag"] == 0 and fresh["partitions"]
        assert all(p["lag"] == 0 and p["end_offset"] == p["committed_offset"] for p in fresh["partitions"])
        assert set(fresh["views"]) == {"floor_summary", "mentor_summary", "global_daily", "global_current"}

        health = await http.get("/health")
        assert health.status_code == 200 and body(health)["status"] == "healthy", health.text
        assert set(body(health)["checks"]) == {"postgresql", "redis", "kafka", "lag"}
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/health/live")).json() == {"status": "alive"}
        metrics = (await http.get("/metrics")).text
        assert 'cohortflow_api_requests_total{method="GET",route="/v1/floors",status="200"}' in metrics
        assert 'cohortflow_api_request_seconds_bucket{le="0.005",method="GET",route="/v1/global",status="304"}' \
            in metrics


async def test_bad_input_is_a_4xx_naming_the_parameter(stack: Settings) -> None:
    everything = token(stack, "views:read", "audit:read")
    cases = [
        ("/v1/floors", {"limit": "0"}, "limit"), ("/v1/floors", {"limit": "501"}, "limit"),
        ("/v1/floors", {"limit": "ten"}, "limit"), ("/v1/floors", {"cursor": "%%%"}, "cursor"),
        ("/v1/floors", {"cursor": "WzFd"}, "cursor"), ("/v1/mentors", {"workload": "busy"}, "workload"),
        ("/v1/mentors", {"active": "maybe"}, "active"), ("/v1/mentors", {"cursor": "eyJhIjoxfQ"}, "cursor"),
        ("/v1/global/daily", {"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ("/v1/global/daily", {"from": "yesterday"}, "from"),
        ("/v1/audit", {"from": "2026-02-01T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"}, "from"),
        ("/v1/audit", {"entity_id": "s1"}, "entity_type"), ("/v1/audit", {"cursor": "zzz"}, "cursor"),
        ("/v1/audit", {"limit": "5000"}, "limit"), ("/v1/audit", {"from": "2026-02-01T00:00:00"}, "from"),
        ("/v1/floors", {"campus": "c\x001"}, "campus"), ("/v1/mentors/m%001", {}, "mentor_id"),
        ("/v1/audit", {"actor_id": "a\x00"}, "actor_id"),
        ("/v1/floors/c1/unknown-floor", {}, "floor"), ("/v1/mentors/unknown-mentor", {}, "mentor_id"),
        # Read exactly as the OpenAPI spells them, not as lax parsing would guess.
        ("/v1/global/daily", {"to": "0"}, "to"), ("/v1/audit", {"to": "0.5"}, "to"),
        ("/v1/audit", {"from": "2026-11-01"}, "from"), ("/v1/floors", {"limit": "1.0"}, "limit"),
        ("/v1/mentors", {"active": "on"}, "active"), ("/v1/audit", {"limit": "1_0"}, "limit"),
        ("/v1/floors", {"campsu": "c1"}, "campsu"), ("/v1/global", {"from": "2026-01-01"}, "from"),
    ]
    async with client(stack) as http:
        for route, params, parameter in cases:
            response = await http.get(route, params=params, headers=everything)
            assert 400 <= response.status_code < 500, (route, params, response.text)
            error = response.json()["error"]
            assert error["parameter"] == parameter, (route, params, error)
            assert parameter in error["message"] or response.status_code == 404, error
        assert (await http.get("/v1/nothing-here", headers=everything)).json()["error"]["code"] == "not_found"


async def test_rate_limit_answers_429_with_retry_after(stack: Settings) -> None:
    limited = load_settings(**{n: getattr(stack, n) for n in type(stack).model_fields
                               if n not in ("api_rate_limit", "api_rate_window_seconds")},
                            api_rate_limit=5, api_rate_window_seconds=2)
    one, other = token(limited, "user:u-9"), token(limited, "user:u-9")
    async with client(limited) as http:
        codes = [(await http.get("/v1/notifications/u-9", headers=one)).status_code for _ in range(5)]
        assert codes == [200] * 5
        refused = await http.get("/v1/notifications/u-9", headers=one)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 2
        assert refused.json()["error"]["code"] == "rate_limited"
        assert (await http.get("/v1/notifications/u-9", headers=other)).status_code == 200  # per token
        await asyncio.sleep(int(refused.headers["retry-after"]) + 0.05)
        assert (await http.get("/v1/notifications/u-9", headers=one)).status_code == 200  # the window slid


async def test_audit_route_pages_the_trail_newest_first(stack: Settings) -> None:
    base = datetime(2026, 10, 30, tzinfo=UTC)
    events = [AuditRecorded(event_id=f"e{i:04d}", occurred_at=base + timedelta(hours=i), source="app",
                            data=AuditRecordedData(actor_id=f"a{i % 3}", action="update", entity_type="submission",
                                                   entity_id=f"s{i % 5}", metadata={"i": i, "b": [1, None]}))
              for i in range(120)]

    async def load() -> None:
        async with await psycopg.AsyncConnection.connect(
                stack.postgres_url, options=f"-c search_path={stack.postgres_schema}") as conn:
            async with conn.transaction():
                await audit.write(conn, events)
    await load()
    reader = token(stack, "audit:read")
    async with client(stack) as http:
        got = await walk(http, "/v1/audit", reader, limit=7, actor_id="a1")
        want = sorted((e for e in events if e.data.actor_id == "a1"), key=lambda e: e.occurred_at, reverse=True)
        assert [g["event_id"] for g in got] == [e.event_id for e in want]
        assert got[0]["metadata"] == {"i": want[0].data.metadata["i"], "b": [1, None]}
        since = await walk(http, "/v1/audit", reader, limit=50, entity_type="submission", entity_id="s2",
                           **{"from": "2026-11-01T00:00:00Z"})
        assert {g["event_id"] for g in since} == {e.event_id for e in events if e.data.entity_id == "s2"
                                                  and e.occurred_at >= datetime(2026, 11, 1, tzinfo=UTC)}


def test_sse_delivers_a_counter_change_within_a_second_of_publishing(stack: Settings, tmp_path: Path) -> None:
    reader = token(stack, "user:u-sse")
    worker = Worker(stack, tmp_path / "worker.log").start()
    try:
        with served(stack, tmp_path / "api.log", COHORTFLOW_SSE_HEARTBEAT_SECONDS="0.5") as url:
            # Warm-up: the worker has joined its group and applied a first record (another user's).
            warm = NotificationCreated(event_id="n-warm", occurred_at=datetime.now(UTC),
                                       data=NotificationCreatedData(notification_id="nid-warm", user_id="u-warm",
                                                                    kind="review"))
            asyncio.run(publish(stack, [("notifications", record_key(warm), encode(warm))]))
            wait_caught_up(stack, workers=[worker], timeout=60)
            delays = []
            with httpx.Client(base_url=url, timeout=30) as http, \
                    http.stream("GET", "/v1/notifications/u-sse/stream", headers=reader) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.iter_lines()
                assert _next_event(lines) == {"user_id": "u-sse", "unread": 0}  # the badge now
                for n in range(1, 4):
                    event = NotificationCreated(event_id=f"n-{n}", occurred_at=datetime.now(UTC),
                                                data=NotificationCreatedData(notification_id=f"nid-{n}",
                                                                             user_id="u-sse", kind="review"))
                    sent = time.monotonic()
                    asyncio.run(publish(stack, [("notifications", record_key(event), encode(event))]))
                    got = _next_event(lines)
                    delays.append(time.monotonic() - sent)
                    assert got == {"user_id": "u-sse", "unread": n}
                quiet = time.monotonic()
                heartbeat = next(line for line in lines if line.startswith(": heartbeat"))  # nothing else happens
                assert heartbeat and time.monotonic() - quiet < 1.5
        assert max(delays) < 1.0, delays
    finally:
        worker.stop()


def _next_event(lines) -> dict:  # an iterator of lines
    """The data of the next `event: badge`, skipping heartbeats."""
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: ") and kind == "badge":
            return json.loads(line[len("data: "):])
    raise AssertionError("stream ended")
