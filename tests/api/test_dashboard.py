"""The dashboard page at `/`, in a real headless Chromium, against a real API and worker.

A known cohort is published and folded; the page, given a token, must show exactly the
figures the API returns (floors, mentors, the global cards and daily charts, freshness per
topic), change within 2 s of a newly published event (views polled, the badge over SSE),
show a floor-scoped token only its floor and explain the sections it may not read, and
answer an invalid or revoked token with a clear message and the token form again.

Chromium and chromedriver come from `make browser` (part of `make test`); without them the
tests fail, never skip.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cohortflow.api.routes.dashboard import FILES
from cohortflow.contract import encode, record_key
from cohortflow.contract.events import EventBase
from cohortflow.devstack.browser import headless_chrome, require_chromium
from cohortflow.errors import StackError
from cohortflow.settings import Settings
from tests.api.helpers import body, isolated_stack, served, token
from tests.builders import ev
from tests.pipeline.harness import Worker, publish, wait_caught_up

pytestmark = pytest.mark.integration

STATIC = Path(__file__).resolve().parents[2] / "cohortflow" / "api" / "static"
NOW = datetime.now(UTC).replace(microsecond=0)
FLOORS = {("north", "F1"): ["m-a1", "m-a2"], ("north", "F2"): ["m-b1"], ("south", "F1"): ["m-c1"]}
STUDENTS = {("north", "F1"): 6, ("north", "F2"): 4, ("south", "F1"): 3}
PILLARS = ("clt", "sri", "cfc", "iipc", "scd")
FOLLOWED = "m-a1"  # the mentor whose badge the live test follows
INVALID = "This token is not valid (unknown or revoked). Enter another token."


def cohort() -> list[EventBase]:
    """Mentors and students on three floors, five days of submissions, reviews, logins, notifications."""
    t0 = NOW - timedelta(days=5, hours=2)
    events: list[EventBase] = []
    students: list[tuple[str, str]] = []  # (student, mentor)
    for (campus, floor), mentors in FLOORS.items():
        for m in mentors:
            events.append(ev("mentor.joined", t0, mentor_id=m, campus=campus, floor=floor))
        for i in range(STUDENTS[(campus, floor)]):
            sid = f"s-{campus}-{floor}-{i}"
            mentor = mentors[i % len(mentors)]
            events += [ev("student.enrolled", t0 + timedelta(minutes=1), student_id=sid, campus=campus, floor=floor),
                       ev("student.assigned", t0 + timedelta(minutes=2), student_id=sid, mentor_id=mentor)]
            students.append((sid, mentor))
    for day in range(5):
        when = t0 + timedelta(days=day, hours=1)
        for n, (sid, mentor) in enumerate(students):
            if (n + day) % 3 == 0:
                continue
            events.append(ev("login.succeeded", when + timedelta(minutes=n), user_id=sid, role="student"))
            pillar = PILLARS[(n + day) % len(PILLARS)]
            sub = f"sub-{sid}-{day}"
            events.append(ev("submission.submitted", when + timedelta(minutes=n + 1), submission_id=sub,
                             student_id=sid, pillar=pillar, attempt=1))
            if (n + day) % 4 != 1:  # the others stay pending
                events.append(ev("review.completed", when + timedelta(minutes=n + 30), review_id=f"r-{sub}",
                                 submission_id=sub, student_id=sid, mentor_id=mentor, attempt=1,
                                 decision="rejected" if (n + day) % 5 == 0 else "approved"))
        for m in ("m-a1", "m-a2", "m-b1", "m-c1")[: 2 + day % 3]:
            events.append(ev("login.succeeded", when, user_id=m, role="mentor"))
    for k in range(3):
        events.append(ev("notification.created", NOW - timedelta(minutes=30 - k), notification_id=f"n-{k}",
                         user_id=FOLLOWED, kind="review"))
    return events


def records(events: list[EventBase]) -> list[tuple[str, bytes, bytes]]:
    return [(e.TOPIC.value, record_key(e), encode(e)) for e in events]


@dataclass(frozen=True)
class Dash:
    settings: Settings
    url: str
    worker: Worker

    def token(self, *scopes: str) -> str:
        return token(self.settings, *scopes)["Authorization"].removeprefix("Bearer ")

    def api(self, path: str, tok: str, **params: str) -> Any:  # JSON
        response = httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {tok}"},
                             timeout=10)
        assert response.status_code == 200, response.text
        return body(response)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    """The known cohort folded by a worker that keeps running, and a real `cohortflow api` process."""
    logs = tmp_path_factory.mktemp("dashboard")
    with isolated_stack(api_rate_limit=1_000_000) as settings:
        asyncio.run(publish(settings, records(cohort())))
        worker = Worker(settings, logs / "worker.log").start()
        try:
            wait_caught_up(settings, workers=[worker], timeout=90)
            with served(settings, logs / "api.log", COHORTFLOW_SSE_HEARTBEAT_SECONDS="1") as url:
                yield Dash(settings, url, worker)
        finally:
            worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        require_chromium()
    except StackError as exc:
        pytest.fail(f"no headless browser for the dashboard tests: {exc}")
    driver = headless_chrome(1440, 1600)
    driver.set_script_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any, dash: Dash) -> Any:  # a WebDriver
    """The dashboard in a tab with nothing in its sessionStorage: it asks for a token."""
    browser.get(f"{dash.url}/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{dash.url}/")
    until(browser, "return document.getElementById('signin').checkVisibility()", 10)
    return browser


def sign_in(driver: Any, tok: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "token-input")
    field.clear()
    field.send_keys(tok)
    driver.find_element(By.ID, "token-submit").click()


def until(driver: Any, script: str, timeout: float, *args: object) -> tuple[Any, float]:
    """Poll ``script`` in the page every 20 ms until it returns something truthy; (it, seconds waited)."""
    began = time.monotonic()
    while True:
        got = driver.execute_script(script, *args)
        if got:
            return got, time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout} s: {script}\npage: {driver.execute_script(SNAPSHOT)}")
        time.sleep(0.02)


# Everything the page shows, as the tests read it: each cell's text and the API value it holds.
SNAPSHOT = """
const fields = (root) => Object.fromEntries([...root.querySelectorAll("[data-field]")].map(
  (e) => [e.dataset.field, {value: e.dataset.value, text: e.textContent.trim()}]));
const rows = (sel, key) => Object.fromEntries([...document.querySelectorAll(sel)].map(
  (tr) => [tr.dataset[key], fields(tr)]));
return {
  floors: rows("#floors-table tbody tr", "floor"),
  mentors: rows("#mentors-table tbody tr", "mentor"),
  topics: rows("#topics-table tbody tr", "topic"),
  views: rows("#views-table tbody tr", "view"),
  cards: fields(document.getElementById("overview-cards")),
  charts: Object.fromEntries([...document.querySelectorAll("[data-chart]")].map((c) => [c.dataset.chart, {
    bars: Object.fromEntries([...c.querySelectorAll("rect[data-date]")].map((r) => [r.dataset.date, +r.dataset.value])),
    last: c.querySelector("[data-total=last]").textContent, window: c.querySelector("[data-total=window]").textContent,
  }])),
  workloads: Object.fromEntries([...document.querySelectorAll("[data-workload-count]")].map(
    (e) => [e.dataset.workloadCount, +e.dataset.value])),
  states: Object.fromEntries([...document.querySelectorAll("section[data-state]")].map((s) => [s.id, {
    state: s.dataset.state, note: s.querySelector(":scope > .note").textContent,
    shown: s.querySelector(":scope > .content").checkVisibility()}])),
  badge: {user: document.getElementById("badge-user").textContent,
          unread: document.getElementById("badge-unread").textContent,
          pending: document.getElementById("badge-pending").textContent,
          live: document.getElementById("badge-state").dataset.state},
  totalLag: document.getElementById("total-lag").dataset.value,
  signin: document.getElementById("signin").checkVisibility(),
  board: document.getElementById("board").checkVisibility(),
  message: document.getElementById("auth-message").checkVisibility()
    ? document.getElementById("auth-message").textContent : null,
  stored: sessionStorage.getItem("cohortflow.dashboard.token"),
};
"""
LOADED = """
const states = [...document.querySelectorAll("#board section[data-state]")].map((s) => s.dataset.state);
return document.getElementById("board").checkVisibility() && !states.includes("loading")
  && document.querySelectorAll("#floors-table tbody tr").length > 0;
"""


def number(text: str) -> Decimal:
    """A figure as the page writes it (thousands separators, % suffix) as a number."""
    return Decimal(text.replace(",", "").removesuffix("%"))


def assert_row(shown: dict, want: dict, fields: tuple[str, ...], what: str) -> None:
    for f in fields:
        assert number(shown[f]["text"]) == Decimal(str(want[f])), (what, f, shown[f], want[f])
        assert shown[f]["value"] == str(want[f]), (what, f, shown[f], want[f])


FLOOR_FIELDS = ("students_total", "students_assigned", "students_unassigned", "mentors_total",
                "submissions_pending", "submissions_approved", "submissions_rejected")
MENTOR_FIELDS = ("assigned_students", "pending_reviews", "reviews_completed")


def daily_window(g: dict) -> tuple[str, str]:
    """The page's chart window: the 30 days up to the newest event applied (global as_of)."""
    end = date.fromisoformat(g["as_of"][:10])
    return (end - timedelta(days=29)).isoformat(), end.isoformat()


def test_the_page_and_its_files_are_served_without_a_token_and_fetch_nothing_elsewhere(dash: Dash) -> None:
    page = httpx.get(f"{dash.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for name, media in FILES.items():
        url = f"{dash.url}/" if name == "index.html" else f"{dash.url}/static/{name}"
        got = httpx.get(url, timeout=10)
        assert got.status_code == 200 and got.headers["content-type"] == media, name
        assert got.content == (STATIC / name).read_bytes(), name
        again = httpx.get(url, headers={"If-None-Match": got.headers["etag"]}, timeout=10)
        assert again.status_code == 304, name
        # No CDN, font or script from elsewhere: the only URL is the SVG namespace the charts are drawn in.
        assert set(re.findall(r"https?://[^\s\"'`)]+", got.text)) <= {"http://www.w3.org/2000/svg"}, name
    assert httpx.get(f"{dash.url}/static/../app.py", timeout=10).status_code == 404
    missing = httpx.get(f"{dash.url}/static/nothing.js", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    paths = httpx.get(f"{dash.url}/openapi.json", timeout=10).json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


def test_the_page_ships_in_the_package() -> None:
    """Every file the route serves exists and is package data (wheel and sdist), not only in this checkout."""
    pyproject = tomllib.loads((STATIC.parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["cohortflow"]
    for name in FILES:
        assert (STATIC / name).is_file(), name
        assert any(fnmatch.fnmatch(f"api/static/{name}", g) for g in globs), (name, globs)
    assert sorted(p.name for p in STATIC.iterdir()) == sorted(FILES)  # nothing shipped that is not served


def test_the_page_shows_exactly_what_the_api_returns(page: Any, dash: Dash) -> None:
    tok = dash.token("views:read")
    sign_in(page, tok)
    until(page, LOADED, 15)
    assert tok not in page.current_url  # the token lives in sessionStorage only
    floors = dash.api("/v1/floors", tok, limit="500")["items"]
    mentors = dash.api("/v1/mentors", tok, limit="500")["items"]
    current = dash.api("/v1/global", tok)
    first, last = daily_window(current)
    days = dash.api("/v1/global/daily", tok, **{"from": first, "to": last})["items"]
    fresh = dash.api("/v1/freshness", tok)
    shown = page.execute_script(SNAPSHOT)
    assert shown["stored"] == tok and shown["message"] is None

    # Floors: every row the API returns, every figure, each pillar's progress bar.
    assert [f"{f['campus']}/{f['floor']}" for f in floors] == [f"{c}/{f}" for c, f in FLOORS] == list(shown["floors"])
    assert [f["students_total"] for f in floors] == list(STUDENTS.values())
    for f in floors:
        row = shown["floors"][f"{f['campus']}/{f['floor']}"]
        assert_row(row, f, FLOOR_FIELDS, f["floor"])
        for pillar, progress in f["pillar_progress"].items():
            assert Decimal(row[f"pillar_progress.{pillar}"]["value"]) == progress
            assert number(row[f"pillar_progress.{pillar}"]["text"]) == progress
        assert number(row["avg_completion"]["text"]) == f["avg_completion"]
    assert sum(f["submissions_pending"] for f in floors) > 0 and sum(f["submissions_approved"] for f in floors) > 0

    # Mentors, with their workload.
    assert set(shown["mentors"]) == {m["mentor_id"] for m in mentors} == {m for ms in FLOORS.values() for m in ms}
    for m in mentors:
        row = shown["mentors"][m["mentor_id"]]
        assert_row(row, m, MENTOR_FIELDS, m["mentor_id"])
        assert row["workload"]["value"] == row["workload"]["text"] == m["workload"]
        assert row["floor"]["text"] == f"{m['campus']}/{m['floor']}"
        if m["approval_rate"] is not None:
            assert number(row["approval_rate"]["text"]) == round(m["approval_rate"] * 100, 2)
    workloads = ("low", "balanced", "overloaded")
    assert shown["workloads"] == {w: sum(m["workload"] == w for m in mentors) for w in workloads}

    # The platform now, and the daily charts over the 30 days up to the newest event.
    for field in ("students_total", "mentors_total", "campuses", "floors", "unread_notifications"):
        assert number(shown["cards"][field]["text"]) == current[field], field
    by_date = {d["date"]: d for d in days}
    assert len(days) >= 5
    for chart in ("submissions", "reviews", "logins"):
        bars = shown["charts"][chart]["bars"]
        assert len(bars) == 30 and min(bars) == first and max(bars) == last
        assert bars == {d: by_date[d][chart] if d in by_date else 0 for d in bars}, chart
        assert number(shown["charts"][chart]["window"]) == sum(d[chart] for d in days)
        assert number(shown["charts"][chart]["last"]) == (by_date[last][chart] if last in by_date else 0)

    # Freshness: each topic's partitions summed, the lag, each view's event time.
    topics: dict[str, dict[str, int]] = {}
    for p in fresh["partitions"]:
        t = topics.setdefault(p["topic"], {"partitions": 0, "committed_offset": 0, "lag": 0})
        t["partitions"] += 1
        t["committed_offset"] += p["committed_offset"]
        t["lag"] += p["lag"]
    assert set(shown["topics"]) == set(topics) and len(topics) >= 5
    for topic, t in topics.items():
        assert_row(shown["topics"][topic], t, ("partitions", "committed_offset", "lag"), topic)
    assert shown["totalLag"] == str(fresh["total_lag"]) == "0"
    assert {v: r["as_of"]["value"] for v, r in shown["views"].items()} == \
        {v: r["as_of"] for v, r in fresh["views"].items()}


def test_a_published_event_changes_the_page_within_two_seconds(page: Any, dash: Dash) -> None:
    tok = dash.token("views:read")
    sign_in(page, tok)
    until(page, LOADED, 15)
    page.execute_script(f"document.querySelector('button[data-follow=\"{FOLLOWED}\"]').click()")
    badge = dash.api(f"/v1/notifications/{FOLLOWED}", tok)
    until(page, "const b = document.getElementById('badge-unread'); return b.dataset.value === arguments[0] && "
                "document.getElementById('badge-state').dataset.state === 'live'", 10, str(badge["unread"]))
    floor = dash.api("/v1/floors/north/F1", tok)
    current = dash.api("/v1/global", tok)
    when = datetime.now(UTC)
    today = when.date().isoformat()
    before = {d["date"]: d for d in dash.api("/v1/global/daily", tok, **{"from": today, "to": today})["items"]}
    submissions = before[today]["submissions"] if today in before else 0

    events = [ev("notification.created", when, notification_id="n-live", user_id=FOLLOWED, kind="review"),
              ev("submission.submitted", when, submission_id="sub-live", student_id="s-north-F1-0",
                 pillar="clt", attempt=1)]
    sent = time.monotonic()
    asyncio.run(publish(dash.settings, records(events)))
    acknowledged = time.monotonic() - sent
    checks = {
        "badge (SSE)": ("return document.getElementById('badge-unread').dataset.value === arguments[0]",
                        str(badge["unread"] + 1)),
        "floor north/F1 pending (poll)": (
            "const c = document.querySelector('tr[data-floor=\"north/F1\"] td[data-field=submissions_pending]');"
            "return c !== null && c.textContent === arguments[0]", str(floor["submissions_pending"] + 1)),
        "daily submissions chart (poll)": (
            "const r = document.querySelector(`[data-chart=submissions] rect[data-date=\"${arguments[0]}\"]`);"
            "return r !== null && r.dataset.value === arguments[1]", today, str(submissions + 1)),
        "unread notifications card (poll)": (
            "const c = document.querySelector('#overview-cards [data-field=unread_notifications]');"
            "return c !== null && c.textContent === arguments[0]", f"{current['unread_notifications'] + 1:,}"),
    }
    delays = {}
    for what, (script, *args) in checks.items():
        until(page, script, 10, *args)
        delays[what] = time.monotonic() - sent
    report = ", ".join(f"{what} {seconds:.2f} s" for what, seconds in delays.items())
    print(f"\npage updated after (from the publish call; Kafka acknowledged after {acknowledged:.2f} s): {report}")
    assert max(delays.values()) < 2.0, delays
    assert dash.api(f"/v1/notifications/{FOLLOWED}", tok)["unread"] == badge["unread"] + 1
    assert dash.api("/v1/floors/north/F1", tok)["submissions_pending"] == floor["submissions_pending"] + 1


def test_a_floor_scoped_token_sees_only_its_floor_and_is_told_what_it_cannot_read(page: Any, dash: Dash) -> None:
    tok = dash.token("floor:north/F1")
    sign_in(page, tok)
    until(page, LOADED, 15)
    shown = until(page, "return document.getElementById('badge').dataset.state === 'forbidden'", 10) and \
        page.execute_script(SNAPSHOT)
    assert list(shown["floors"]) == ["north/F1"]
    assert_row(shown["floors"]["north/F1"], dash.api("/v1/floors/north/F1", tok), FLOOR_FIELDS, "north/F1")
    assert set(shown["mentors"]) == set(FLOORS[("north", "F1")]) == \
        {m["mentor_id"] for m in dash.api("/v1/mentors", tok)["items"]}
    for section in ("overview", "daily", "freshness"):
        state = shown["states"][section]
        assert state["state"] == "forbidden", (section, state)
        assert "scopes do not cover" in state["note"] and "hidden for this token" in state["note"], state
        assert state["shown"] is False, (section, state)
    assert shown["states"]["floors"]["state"] == shown["states"]["mentors"]["state"] == "ok"
    assert shown["states"]["floors"]["shown"] and shown["states"]["mentors"]["shown"]
    assert not shown["cards"] and not shown["topics"] and not shown["charts"]
    # The busiest mentor of its floor is followed by default: the token may not read that badge.
    note = shown["states"]["badge"]["note"]
    assert shown["badge"]["live"] == "forbidden" and "needs views:read or user:" in note, shown["badge"]


def test_an_invalid_or_revoked_token_gets_a_clear_message_and_the_form_again(page: Any, dash: Dash) -> None:
    sign_in(page, "cf_not-a-token-at-all")
    shown = until(page, "return document.getElementById('auth-message').checkVisibility()", 10) and \
        page.execute_script(SNAPSHOT)
    assert shown["message"].startswith(INVALID) and "unknown or revoked token" in shown["message"]
    assert shown["signin"] and not shown["board"] and shown["stored"] is None

    # A token revoked while the page is open: the next refresh signs out with the same message.
    name = f"dash-revoked-{time.monotonic_ns()}"
    tok = token(dash.settings, "views:read", name=name)["Authorization"].removeprefix("Bearer ")
    sign_in(page, tok)
    until(page, LOADED, 15)
    with psycopg.connect(dash.settings.postgres_url, autocommit=True,
                         options=f"-c search_path={dash.settings.postgres_schema}") as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = %s", [name])
    until(page, "return document.getElementById('signin').checkVisibility()", dash.settings.api_token_cache_seconds + 5)
    shown = page.execute_script(SNAPSHOT)
    assert shown["message"].startswith(INVALID) and shown["signin"] and not shown["board"]
    assert shown["stored"] is None


def test_sign_out_forgets_the_token(page: Any, dash: Dash) -> None:
    from selenium.webdriver.common.by import By

    sign_in(page, dash.token("views:read"))
    until(page, LOADED, 15)
    page.refresh()  # the token survives a reload of the tab (sessionStorage)
    until(page, LOADED, 15)
    page.find_element(By.ID, "sign-out").click()
    shown = page.execute_script(SNAPSHOT)
    assert shown["signin"] and not shown["board"] and shown["stored"] is None
    assert "Signed out" in shown["message"]
    page.refresh()
    assert until(page, "return document.getElementById('signin').checkVisibility()", 10)[0]
