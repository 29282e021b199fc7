"""Property-based fuzz of the read API from its own OpenAPI (schemathesis), against a real server and stack.

Every generated request (valid and invalid parameters alike) must get no 5xx, a
documented status code and content type, and a body that conforms to the schema.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cohortflow.settings import Settings, load_settings
from tests.conftest import _cleanup, _require_services
from tests.logs import adversarial_log
from tests.streams.harness import ROOT, Worker, environment, publish, wait_caught_up
from tests.streams.test_worker import records_of
from views.api import auth

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One isolated stack with views from a real worker, a real `cohortflow api`, and a token for all of it."""
    from streams.topics import ensure_topics
    from views.migrate import migrate

    tag = uuid.uuid4().hex[:10]
    stack: Settings = load_settings(topic_prefix=f"t{tag}.", postgres_schema=f"t_{tag}", redis_prefix=f"t{tag}:",
                                    consumer_group=f"g{tag}", partitions=3, session_timeout_seconds=6)
    _require_services(stack)
    logs = tmp_path_factory.mktemp("fuzz")
    api = None
    try:
        asyncio.run(ensure_topics(stack))
        migrate(stack)
        asyncio.run(publish(stack, records_of(adversarial_log(seed=43, size=3_000, contract=stack.contract))))
        worker = Worker(stack, logs / "worker.log").start()
        try:
            wait_caught_up(stack, workers=[worker])
        finally:
            worker.stop()
        with psycopg.connect(stack.postgres_url, autocommit=True,
                             options=f"-c search_path={stack.postgres_schema}") as conn:
            token = auth.create(conn, "fuzz", ["views:read", "audit:read"])
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        api = subprocess.Popen([sys.executable, "-m", "cohortflow.cli", "api", "--port", str(port)], cwd=ROOT,
                               env={**environment(stack), "COHORTFLOW_API_RATE_LIMIT": "1000000"},
                               stdout=open(logs / "api.log", "wb"), stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, {"Authorization": f"Bearer {token}"}
        assert api.poll() is None, (logs / "api.log").read_text()[-3000:]
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        _cleanup(stack)


def test_no_5xx_and_every_response_fits_the_schema(served: tuple[str, dict[str, str]]) -> None:
    from hypothesis import given

    url, headers = served
    # The badge stream never ends: it has its own test (test_api.py), not a fuzz.
    api = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path_regex=r".*/stream$")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    tried = []
    for result in api.get_all_operations():
        operation = result.ok()
        tried.append(operation.label)

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=40, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def fuzz(case) -> None:  # noqa: ANN001
            case.call_and_validate(base_url=url, headers=headers, checks=checks)

        fuzz()
    assert len(tried) >= 12, tried
