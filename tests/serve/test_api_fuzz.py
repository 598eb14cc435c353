"""The OpenAPI document fuzzed with schemathesis: requests generated from it (valid and invalid ones) never get a
server error, and every answer matches the status codes and bodies the document declares."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

EXAMPLES_PER_OPERATION = 12
"""Generated requests per operation and generation mode (valid, invalid): bounded so the run takes seconds."""


@pytest.fixture(scope="module")
def fuzzed(make_server, served_root):
    """A server with a token (so auth is part of the document) and the served root."""
    return make_server(token="fuzz-token", root=served_root)


def _fuzz(operation, mode: GenerationMode, url: str, headers: dict[str, str], statuses: Counter[int]) -> None:
    """Send ``EXAMPLES_PER_OPERATION`` generated requests for ``operation`` and check every answer: never a server
    error; for valid requests also a declared status code and a body matching its declared schema."""
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks += [status_code_conformance, response_schema_conformance]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        answer = case.call(base_url=url, headers=headers, timeout=60)
        statuses[answer.status_code] += 1
        case.validate_response(answer, checks=checks, headers=headers)

    run()


def test_generated_requests_never_get_a_server_error(fuzzed):
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    headers = {"Authorization": "Bearer fuzz-token"}
    statuses: Counter[int] = Counter()
    unsatisfiable: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} == {
        "/health", "/models", "/presets", "/zeroshot", "/embed/image", "/embed/text", "/heatmap", "/search",
    }
    began = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzzed.url, headers, statuses)
            except Unsatisfiable:  # an operation without parameters has no invalid requests
                assert mode is GenerationMode.NEGATIVE
                unsatisfiable.append(operation.path)
    elapsed = time.monotonic() - began
    total = sum(statuses.values())
    print(f"\nfuzzed {len(operations)} operations: {total} requests in {elapsed:.1f} s, statuses {dict(statuses)}")
    assert not any(code >= 500 for code in statuses)
    assert set(unsatisfiable) <= {"/health", "/models", "/presets"}
    assert total >= len(operations) * EXAMPLES_PER_OPERATION
    assert statuses[200] > 0 and sum(count for code, count in statuses.items() if 400 <= code < 500) > 0
