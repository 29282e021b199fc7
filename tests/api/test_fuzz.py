"""Property-based fuzz of the read API from its own OpenAPI (schemathesis), over views a real worker wrote.

Every generated request, valid and invalid parameters alike, must get no 5xx, a
documented status code, content type and headers, and a body that conforms to the
schema; invalid input must be refused with a 4xx, and a /v1 route sent without its
token must refuse it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cohortflow.api.app import create_app
from tests.api.helpers import ingest, isolated_settings, isolated_stack, token

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth]

# `@schema.parametrize()` needs the schema when the module is collected (schemathesis' `from_fixture`
# breaks on pytest 9), so the isolated settings and the app are made here; building them does no I/O,
# and the fixture below creates the stack they point at before any test runs.
SETTINGS = isolated_settings(api_rate_limit=1_000_000)
APP = create_app(SETTINGS)
# The badge stream never ends: it has its own test (test_api.py), not a fuzz.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex=r".*/stream$")
ANSWERED: dict[str, set[int]] = {}  # status codes per operation, from the fuzz
BEARER: list[str] = []  # the fixture's token, once made


@schema.auth(refresh_interval=None)  # uncached: collection asks before the fixture has made the token
class Bearer:
    """The token as schemathesis' own auth, so it knows which cases carry it and which omit it on purpose."""

    def get(self, case: schemathesis.Case, context: object) -> str:
        return BEARER[-1] if BEARER else "Bearer not-yet"

    def set(self, case: schemathesis.Case, data: str, context: object) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@pytest.fixture(scope="module")
def authorization(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The stack of SETTINGS with views from a real worker, and a token covering all of it."""
    with isolated_stack(SETTINGS) as settings:
        ingest(settings, tmp_path_factory.mktemp("fuzz"), seed=43, size=3_000)
        headers = token(settings, "views:read", "audit:read", name="fuzz")
        BEARER.append(headers["Authorization"])
        yield headers


@schema.parametrize()
@hypothesis_settings(max_examples=40, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_5xx_and_every_response_fits_the_schema(case: schemathesis.Case, authorization: dict[str, str]) -> None:
    assert authorization
    response = case.call()
    ANSWERED.setdefault(case.operation.label, set()).add(response.status_code)
    case.validate_response(response, checks=CHECKS)


def test_the_fuzz_was_authenticated_and_reached_every_operation() -> None:
    """Runs after the fuzz (file order): the token was sent, so the fuzz reached past the 401s.

    Each operation answered 200 to some case; those of one floor or mentor, whose random ids name
    no row, answered 404 (which only a token covering every view gets: a narrower one gets 403).
    """
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert operations == set(ANSWERED), "run the whole module: the fuzz above fills ANSWERED"
    by_id = {"GET /v1/floors/{campus}/{floor}", "GET /v1/mentors/{mentor_id}"}
    assert {label for label, codes in ANSWERED.items() if 200 in codes} >= operations - by_id, ANSWERED
    assert all(404 in ANSWERED[label] or 200 in ANSWERED[label] for label in by_id), ANSWERED
