"""Access to the read API, one test per scope: each sees what it covers and is refused its neighbours."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from cohortflow.api.app import create_app
from cohortflow.settings import Settings
from tests.api.helpers import client, db_rows, ingest, isolated_stack, token, walk

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class World:
    settings: Settings
    mine: tuple[str, str]  # a floor
    neighbour: tuple[str, str]  # another floor of the same campus
    my_mentor: str  # a mentor of `mine`
    other_mentor: str  # a mentor of another floor
    user: str  # a user with counters
    other_user: str  # another one

    def routes(self) -> list[str]:
        """Every /v1 route of the app's OpenAPI, its path parameters filled in."""
        fill = {"campus": self.mine[0], "floor": self.mine[1], "mentor_id": self.my_mentor, "user_id": self.user}
        paths = [p for p in create_app(self.settings).openapi()["paths"] if p.startswith("/v1")]
        return [re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], p) for p in paths]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with isolated_stack() as s:
        ingest(s, tmp_path_factory.mktemp("scopes"), seed=42, size=6_000)
        floors = [(r["campus"], r["floor"]) for r in db_rows(s, "SELECT campus, floor FROM floor_summary "
                                                                "WHERE students_total > 0 ORDER BY campus, floor")]
        mine, neighbour = next((a, b) for a, b in zip(floors, floors[1:]) if a[0] == b[0])
        mentors = db_rows(s, "SELECT mentor_id, campus, floor FROM mentor_summary WHERE campus IS NOT NULL")
        my_mentor = next(m["mentor_id"] for m in mentors if (m["campus"], m["floor"]) == mine)
        other_mentor = next(m["mentor_id"] for m in mentors if (m["campus"], m["floor"]) != mine)
        users = sorted(r["user_id"] for r in db_rows(s, "SELECT user_id FROM badges WHERE unread > 0"))
        yield World(s, mine, neighbour, my_mentor, other_mentor, users[0], users[1])


def floor_url(floor: tuple[str, str]) -> str:
    return f"/v1/floors/{floor[0]}/{floor[1]}"


async def statuses(w: World, headers: dict[str, str], routes: list[str]) -> dict[str, int]:
    async with client(w.settings) as http:
        return {r: (await http.get(r, headers=headers)).status_code for r in routes}


async def test_every_v1_route_needs_a_valid_token(world: World) -> None:
    routes = world.routes()
    assert len(routes) >= 10 and "/v1/audit" in routes and f"/v1/notifications/{world.user}/stream" in routes
    revoked = token(world.settings, "views:read", "audit:read", name="to-revoke")
    with psycopg.connect(world.settings.postgres_url, autocommit=True,
                         options=f"-c search_path={world.settings.postgres_schema}") as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'to-revoke'")
    async with client(world.settings) as http:
        for route in routes:
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                            {"Authorization": "Bearer"}, revoked):
                response = await http.get(route, headers=headers)
                assert response.status_code == 401, (route, headers, response.text)
                error = response.json()["error"]
                assert error["code"] == "unauthorized" and error["parameter"] == "Authorization", error
                assert response.headers["www-authenticate"].startswith("Bearer")
        # Operations endpoints stay open to load balancers and scrapers.
        for route in ("/health/live", "/health/ready", "/metrics"):
            assert (await http.get(route)).status_code == 200, route


async def test_views_read_covers_every_view_and_badge_but_not_the_audit_trail(world: World) -> None:
    w = world
    got = await statuses(w, token(w.settings, "views:read"), [
        floor_url(w.mine), floor_url(w.neighbour), f"/v1/mentors/{w.other_mentor}", "/v1/floors", "/v1/mentors",
        "/v1/global", "/v1/global/daily", "/v1/freshness", f"/v1/notifications/{w.user}",
        f"/v1/notifications/{w.other_user}", "/v1/audit"])
    assert got == {**{r: 200 for r in got}, "/v1/audit": 403}


async def test_floor_scope_covers_its_floor_and_mentors_only(world: World) -> None:
    w = world
    mine = token(w.settings, f"floor:{w.mine[0]}/{w.mine[1]}")
    got = await statuses(w, mine, [
        floor_url(w.mine), f"/v1/mentors/{w.my_mentor}",
        floor_url(w.neighbour), f"/v1/mentors/{w.other_mentor}", "/v1/mentors/nobody", floor_url(("x", "y")),
        "/v1/global", "/v1/global/daily", "/v1/freshness", "/v1/audit",
        f"/v1/notifications/{w.user}", f"/v1/notifications/{w.other_user}",
        f"/v1/notifications/{w.my_mentor}", f"/v1/notifications/{w.user}/stream"])
    assert got == {**{r: 403 for r in got}, floor_url(w.mine): 200, f"/v1/mentors/{w.my_mentor}": 200}
    async with client(w.settings) as http:
        assert [(f["campus"], f["floor"]) for f in await walk(http, "/v1/floors", mine, limit=10)] == [w.mine]
        assert await walk(http, "/v1/floors", mine, limit=10, campus=w.neighbour[0]) != []  # same campus
        visible = await walk(http, "/v1/mentors", mine, limit=5)
        wanted = db_rows(w.settings, f"SELECT * FROM mentor_summary WHERE campus = '{w.mine[0]}' "
                                     f"AND floor = '{w.mine[1]}' ORDER BY mentor_id")
        assert visible == wanted and wanted
        # A filter naming the neighbour floor finds nothing rather than leaking it.
        assert await walk(http, "/v1/mentors", mine, limit=5, campus=w.neighbour[0], floor=w.neighbour[1]) == []


async def test_user_scope_covers_that_users_counters_only(world: World) -> None:
    w = world
    got = await statuses(w, token(w.settings, f"user:{w.user}"), [
        f"/v1/notifications/{w.user}",
        f"/v1/notifications/{w.other_user}", f"/v1/notifications/{w.other_user}/stream",
        floor_url(w.mine), floor_url(w.neighbour), "/v1/floors", "/v1/mentors", f"/v1/mentors/{w.my_mentor}",
        "/v1/global", "/v1/global/daily", "/v1/freshness", "/v1/audit"])
    assert got == {**{r: 403 for r in got}, f"/v1/notifications/{w.user}": 200}


async def test_audit_scope_covers_the_audit_trail_only(world: World) -> None:
    w = world
    got = await statuses(w, token(w.settings, "audit:read"), [
        "/v1/audit", floor_url(w.mine), floor_url(w.neighbour), "/v1/floors", "/v1/mentors",
        f"/v1/mentors/{w.my_mentor}", "/v1/global", "/v1/global/daily", "/v1/freshness",
        f"/v1/notifications/{w.user}", f"/v1/notifications/{w.other_user}/stream"])
    assert got == {**{r: 403 for r in got}, "/v1/audit": 200}


async def test_scopes_add_up_and_a_refusal_names_the_problem(world: World) -> None:
    w = world
    both = token(w.settings, f"floor:{w.mine[0]}/{w.mine[1]}", f"user:{w.user}")
    got = await statuses(w, both, [floor_url(w.mine), f"/v1/notifications/{w.user}", floor_url(w.neighbour),
                                   f"/v1/notifications/{w.other_user}"])
    assert list(got.values()) == [200, 200, 403, 403]
    async with client(w.settings) as http:
        refused = (await http.get(floor_url(w.neighbour), headers=both)).json()["error"]
    assert refused["code"] == "forbidden" and f"{w.neighbour[0]}/{w.neighbour[1]}" in refused["message"]


async def test_a_revoked_token_stops_working_within_the_cache_time(world: World) -> None:
    s = world.settings
    headers = token(s, f"user:{world.user}", name="soon-revoked")
    async with client(s) as http:
        assert (await http.get(f"/v1/notifications/{world.user}", headers=headers)).status_code == 200
        with psycopg.connect(s.postgres_url, autocommit=True, options=f"-c search_path={s.postgres_schema}") as c:
            c.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'soon-revoked'")
        await asyncio.sleep(s.api_token_cache_seconds + 0.1)
        assert (await http.get(f"/v1/notifications/{world.user}", headers=headers)).status_code == 401
