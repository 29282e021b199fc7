"""The publishing SDK against the real broker: typed helpers, validation at the call site, timeouts."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import pytest

from cohortflow.contract import EVENT_CLASSES, EventBase, Rejection, decode, format_occurred_at
from cohortflow.errors import CohortflowError, ServiceUnavailable
from cohortflow.producers.exceptions import InvalidEvent, PublishTimeout
from cohortflow.producers.publisher import AsyncPublisher, Publisher
from cohortflow.producers.typed import method_name
from tests.producers.helpers import CALLS, read_topics, read_topics_sync


def test_every_event_type_has_a_call() -> None:
    assert set(CALLS) == set(EVENT_CLASSES)


def _check_published(settings, published: list[EventBase], records: list) -> None:
    assert len(records) == len(published)
    by_id = {}
    for record in records:
        found = decode(record.topic, record.key, record.value, settings.contract)
        assert not isinstance(found, Rejection), found
        assert record.key == found.key.encode()
        by_id[found.event_id] = found
    for event in published:
        assert by_id[event.event_id] == event
        assert type(by_id[event.event_id]) is EVENT_CLASSES[event.type]  # type: ignore[attr-defined]


async def test_async_helpers_publish_what_schemas_decode(stack) -> None:
    published = []
    async with AsyncPublisher(stack, source="test-app") as publisher:
        for event_type, kwargs in CALLS.items():
            event = await getattr(publisher, method_name(event_type))(**kwargs)
            assert event.source == "test-app" and event.event_id and event.occurred_at.tzinfo is UTC
            published.append(event)
        moment = datetime(2026, 11, 23, 10, 15, 30, 123000, tzinfo=UTC)
        published.append(await publisher.login_succeeded(user_id="s9", role="student", event_id="fixed-1",
                                                          occurred_at=moment, source="other"))
        assert (published[-1].event_id, published[-1].occurred_at, published[-1].source) == ("fixed-1", moment, "other")
    _check_published(stack, published, await read_topics(stack, len(published)))


def test_sync_helpers_publish_what_schemas_decode(stack) -> None:
    published = []
    with Publisher(stack) as publisher:
        for event_type, kwargs in CALLS.items():
            published.append(getattr(publisher, method_name(event_type))(**kwargs))
        published.append(publisher.submission_submitted(submission_id="sub2", student_id="s2", pillar="scd",
                                                        attempt=2, occurred_at="2026-11-23T11:15:30+01:00"))
        assert format_occurred_at(published[-1].occurred_at) == "2026-11-23T10:15:30.000000Z"
    _check_published(stack, published, read_topics_sync(stack, len(published)))


def test_sync_publisher_from_many_threads(stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Publisher(stack) as publisher:
        with ThreadPoolExecutor(8) as pool:
            published = list(pool.map(lambda i: publisher.login_succeeded(user_id=f"u{i}", role="student"),
                                      range(200)))
    _check_published(stack, published, read_topics_sync(stack, len(published)))


@pytest.mark.parametrize(
    ("method", "kwargs", "field"),
    [
        ("submission_submitted", {"submission_id": "x", "student_id": "s", "pillar": "clt", "attempt": 0},
         "data.attempt"),
        ("submission_submitted", {"submission_id": "x", "student_id": "s", "pillar": "nope", "attempt": 1},
         "data.pillar"),
        ("submission_submitted", {"submission_id": "x", "student_id": "s", "pillar": "clt", "attempt": "1"},
         "data.attempt"),
        ("review_completed", {"review_id": "r", "submission_id": "x", "student_id": "s", "mentor_id": "m",
                              "attempt": 1, "decision": "maybe"}, "data.decision"),
        ("login_succeeded", {"user_id": "", "role": "student"}, "data.user_id"),
        ("login_succeeded", {"user_id": "u", "role": "root"}, "data.role"),
        ("student_enrolled", {"student_id": "s", "campus": "c", "floor": 3}, "data.floor"),
        ("audit_recorded", {"actor_id": "a", "action": "x", "entity_type": "t", "entity_id": "e",
                            "metadata": {"bad": "\x00"}}, "data.metadata.bad"),
        ("login_failed", {"user_id": "u", "reason": "r", "event_id": "x" * 129}, "event_id"),
        ("login_failed", {"user_id": "u", "reason": "r", "occurred_at": "yesterday"}, "occurred_at"),
        ("login_failed", {"user_id": "u", "reason": "r", "occurred_at": datetime(2026, 1, 1)}, "occurred_at"),
    ],
)
def test_an_invalid_call_raises_naming_the_field(method: str, kwargs: dict, field: str) -> None:
    # Validation happens before any connection: an unreachable broker proves nothing was sent.
    with Publisher(bootstrap="127.0.0.1:1", timeout=1, contract=_default_contract()) as publisher:
        with pytest.raises(InvalidEvent) as caught:
            getattr(publisher, method)(**kwargs)
    assert caught.value.field == field
    assert field in str(caught.value) and isinstance(caught.value, CohortflowError)


async def test_an_invalid_async_call_raises_naming_the_field() -> None:
    publisher = AsyncPublisher(bootstrap="127.0.0.1:1", timeout=1, contract=_default_contract())
    with pytest.raises(InvalidEvent, match="data.mentor_id") as caught:
        await publisher.student_assigned(student_id="s1", mentor_id="")
    assert caught.value.field == "data.mentor_id"
    with pytest.raises(TypeError, match="pillar"):
        await publisher.submission_submitted(submission_id="x", student_id="s", attempt=1)  # a missing argument
    await publisher.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def _default_contract():
    from cohortflow.contract import DEFAULT_CONTRACT

    return DEFAULT_CONTRACT


@pytest.mark.parametrize("bootstrap", [f"127.0.0.1:{_closed_port()}", "10.255.255.1:9092"],
                         ids=["closed-port", "unanswered"])
def test_broker_unreachable_fails_within_the_timeout(base_settings, bootstrap: str) -> None:
    began = time.monotonic()
    with Publisher(base_settings, bootstrap=bootstrap, timeout=2) as publisher:
        with pytest.raises(PublishTimeout) as caught:
            publisher.login_succeeded(user_id="u1", role="student")
        elapsed = time.monotonic() - began
    assert elapsed < 2 + 1.5, elapsed
    assert isinstance(caught.value, ServiceUnavailable)
    assert bootstrap in str(caught.value) and "make services" in str(caught.value)


async def test_async_broker_unreachable_fails_within_the_timeout(base_settings) -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    publisher = AsyncPublisher(base_settings, bootstrap=bootstrap, timeout=1.5)
    with pytest.raises(PublishTimeout, match="did not answer within 1.5 s"):
        await publisher.login_failed(user_id="u1", reason="bad_password")
    assert time.monotonic() - began < 1.5 + 1.5
    await publisher.close()


def test_the_timeout_comes_from_the_settings(base_settings, monkeypatch) -> None:
    from cohortflow.settings import load_settings

    monkeypatch.setenv("COHORTFLOW_PUBLISH_TIMEOUT_SECONDS", "3.5")
    with Publisher(load_settings()) as publisher:
        assert publisher.timeout == 3.5


def test_a_publisher_created_before_a_fork_works_in_the_child(stack) -> None:
    # Celery prefork and gunicorn import the app (and its module-level publisher) before forking workers.
    import multiprocessing

    publisher = Publisher(stack)
    parent_first = publisher.login_succeeded(user_id="parent", role="admin")

    def child(queue) -> None:
        event = publisher.login_succeeded(user_id="child", role="student")
        publisher.close()
        queue.put(event.event_id)

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue,))
    process.start()
    child_id = queue.get(timeout=30)
    process.join(30)
    assert process.exitcode == 0
    parent_again = publisher.login_succeeded(user_id="parent", role="admin")  # the parent's connection still works
    publisher.close()
    records = read_topics_sync(stack, 3)
    found = {decode(r.topic, r.key, r.value, stack.contract).event_id for r in records}
    assert found == {parent_first.event_id, child_id, parent_again.event_id}


def test_a_publisher_never_closed_lets_the_interpreter_exit_cleanly(stack) -> None:
    import subprocess
    import sys

    from tests.pipeline.harness import ROOT, environment

    script = ("from cohortflow.producers.publisher import Publisher\n"
              "p = Publisher(source='script')\n"
              "print(p.login_succeeded(user_id='u1', role='student').event_id)\n")  # no close(): atexit does it
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-c", script], cwd=ROOT,
                          env=environment(stack), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Unclosed" not in done.stderr, done.stderr
    assert time.monotonic() - began < 20
    records = read_topics_sync(stack, 1)
    assert [decode(r.topic, r.key, r.value, stack.contract).event_id for r in records] == [done.stdout.strip()]
