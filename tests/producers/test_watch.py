"""The demo's watch table: pages through the views, and waits (never crashes) while the API is away."""

from __future__ import annotations

import time

import httpx
from rich.console import Console

from cohortflow.producers.watch import Snapshot, nonzero, poll, render


def _floor(i: int) -> dict:
    return {"campus": "c", "floor": f"f{i}", "students_total": i, "students_assigned": i, "mentors_total": 1,
            "submissions_pending": 0, "submissions_approved": 0, "submissions_rejected": 0, "avg_completion": "0.00"}


def _mentor(i: int) -> dict:
    return {"mentor_id": f"m{i:04d}", "campus": None, "floor": None, "assigned_students": i % 3,
            "pending_reviews": i % 7, "reviews_completed": 0, "approval_rate": None, "avg_review_seconds": None,
            "workload": "low"}


def _api(mentors: int, status: int = 200):
    def handle(request: httpx.Request) -> httpx.Response:
        if status != 200:
            return httpx.Response(status, json={"error": "no"})
        start = int(request.url.params.get("cursor", 0))
        rows = [_floor(i) for i in range(3)] if request.url.path == "/v1/floors" else [
            _mentor(i) for i in range(start, min(mentors, start + 500))]
        more = request.url.path == "/v1/mentors" and start + 500 < mentors
        return httpx.Response(200, json={"items": rows, "next_cursor": str(start + 500) if more else None})
    return httpx.MockTransport(handle)


def test_pages_through_the_mentors_and_renders() -> None:
    with httpx.Client(transport=_api(1700), base_url="http://api") as client:
        snapshot = poll(client, Snapshot(), time.monotonic())
    assert snapshot.error is None and len(snapshot.mentors) == 1700 and len(snapshot.floors) == 3
    assert nonzero(snapshot) and snapshot.first_nonzero_after is not None
    console = Console(width=120, record=True)
    console.print(render(snapshot, "http://api", 1.0))
    text = console.export_text()
    assert "c/f2" in text and "m0006" in text  # busiest floor, a mentor with the most pending reviews


def test_waits_while_the_api_is_away_or_refuses() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with httpx.Client(transport=httpx.MockTransport(down), base_url="http://api") as client:
        snapshot = poll(client, Snapshot(), time.monotonic())
    assert "waiting for the API" in snapshot.error and not nonzero(snapshot)
    with httpx.Client(transport=_api(0, status=401), base_url="http://api") as client:
        assert "refused the token" in poll(client, Snapshot(), time.monotonic()).error
    with httpx.Client(transport=_api(0, status=503), base_url="http://api") as client:
        assert "waiting for the API" in poll(client, Snapshot(), time.monotonic()).error
