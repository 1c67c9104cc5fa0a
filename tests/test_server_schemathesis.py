"""Schemathesis over the OpenAPI the running server serves: no 5xx, no undocumented response.

The server runs under uvicorn on a free port in this process (sharing the loaded models);
every route is exercised with a small, bounded number of generated examples.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_support import make_site, pipeline

from facegate.api import create_app
from facegate.config import Settings
from facegate.domain import add_person, create_api_key
from facegate.store.db import Store

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # decide_deadline_ms: a loaded test machine may need more than the 1 s default.
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("st"), max_frame_bytes=200_000, decide_deadline_ms=30_000
    )
    setup = make_site(cfg)
    store = Store(cfg.database_url)
    with store.session() as s:
        _, key = create_api_key(
            s,
            actor="test",
            scopes=["gate:decide", "admin", "enroll", "rights"],
            site_id=setup.site_id,
            all_access_points=True,
        )
    store.dispose()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(cfg, pipeline=pipeline()),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    store = Store(cfg.database_url)
    with store.session() as s:
        person = add_person(s, actor="test", category="resident", site_id=setup.site_id).id
    store.dispose()
    yield base, key, {"access_point_id": setup.ap_main, "person_id": person}
    server.should_exit = True
    thread.join(5)


def test_openapi_conformance(served):
    """Every operation, a few generated examples each: schema-valid data with random and with
    real ids (so routes get past their 404s), and schema-invalid data."""
    base, key, real_ids = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 15
    statuses: list[int] = []
    for op in operations:
        names = {p.name for p in op.path_parameters}
        real = {n: v for n, v in real_ids.items() if n in names}
        variants = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if real:
            variants.append((GenerationMode.POSITIVE, real))
        for mode, path_parameters in variants:

            @given(case=op.as_strategy(mode, path_parameters=path_parameters))
            @settings(
                max_examples=5,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case) -> None:
                r = case.call_and_validate(base_url=base, headers={"X-API-Key": key}, checks=CHECKS)
                statuses.append(r.status_code)

            try:
                run()
            except Unsatisfiable:
                # Nothing to make invalid (e.g. GET /healthz takes no input).
                assert mode is GenerationMode.NEGATIVE
    assert len(statuses) > 100
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)


def test_openapi_declares_every_route_and_error_shape(served):
    base, _, _ = served
    spec = httpx.get(f"{base}/openapi.json").json()
    paths = spec["paths"]
    assert "/v1/access-points/{access_point_id}/decide" in paths
    for path, ops in paths.items():
        for method, op in ops.items():
            if path.startswith("/v1/"):
                for status in ("401", "403", "422"):
                    ref = op["responses"][status]["content"]["application/json"]["schema"]
                    assert ref["$ref"].endswith("/ErrorBody"), (method, path, status)
