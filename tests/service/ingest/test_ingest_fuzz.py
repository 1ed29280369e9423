"""Property-based fuzzing of the HTTP API: no input, however malformed, yields a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.examples import as_csv, as_ndjson
from services.ingest.sources import SOURCES, Source
from tests.service.ingest.conftest import IngestServer
from tests.synthetic import household

pytestmark = pytest.mark.stack

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


PATHS: list[list[str | int]] = [
    [],
    ["members", 0],
    ["members", 1],
    ["indicators"],
    ["members", 0, "indicators"],
]


@st.composite
def mutated_households(draw: st.DrawFn) -> bytes:
    """A valid household with a few fields replaced by arbitrary JSON, at any depth."""
    record: dict[str, Any] = household()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target: Any = record
        for step in path:
            # An earlier mutation may have replaced a parent with something else.
            present = (isinstance(target, dict) and step in target) or (
                isinstance(target, list) and isinstance(step, int) and step < len(target)
            )
            target = target[step] if present else None
        if isinstance(target, dict):
            key = draw(st.sampled_from([*target.keys(), "extra", "1", "22", "32"]))
            target[key] = draw(json_values)
    return orjson.dumps([record])


@st.composite
def bodies(draw: st.DrawFn, source: Source) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "ndjson", "csv", "csv-cut"]))
    if kind == "bytes":
        return draw(
            st.sampled_from(["application/json", "application/x-ndjson", "text/csv"])
        ), draw(st.binary(max_size=500))
    if kind == "json":
        return "application/json", orjson.dumps(draw(json_values))
    if kind == "mutated":
        return "application/json", draw(mutated_households())
    if kind == "ndjson":
        lines = draw(st.lists(json_values.map(orjson.dumps) | st.binary(max_size=50), max_size=5))
        return "application/x-ndjson", b"\n".join([*lines, as_ndjson(source)])
    example = as_csv(source)
    if kind == "csv":
        position = draw(st.integers(0, len(example)))
        return "text/csv", example[:position] + draw(st.binary(max_size=40)) + example[position:]
    return "text/csv", example[: draw(st.integers(0, len(example)))]


@pytest.mark.parametrize("source", list(SOURCES.values()), ids=list(SOURCES))
def test_no_input_yields_a_server_error(
    source: Source, ingest: IngestServer, ingest_keys: dict[str, str]
) -> None:
    with httpx.Client(base_url=ingest.url, timeout=30) as client:

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
        @given(bodies(source), st.sampled_from(["", "; charset=utf-8", "; charset=latin-1"]))
        def check(body: tuple[str, bytes], parameters: str) -> None:
            content_type, content = body
            response = client.post(
                source.path,
                content=content,
                headers={
                    "authorization": f"Bearer {ingest_keys['ALL']}",
                    "content-type": content_type + parameters,
                },
            )
            assert response.status_code < 500, response.text
            reply = response.json()
            assert "accepted" in reply or reply["detail"]

        check()
