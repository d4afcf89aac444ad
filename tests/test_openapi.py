"""The OpenAPI document is generated from the route registry, the reference page lists it, and
schemathesis finds no server error and no answer off the schema on a live server."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import make_server

from listmgr.services import accounts, lists, subscribers
from listmgr.services.subscriptions import Origin
from listmgr.web.api.base import ROUTES


def test_document_covers_every_api_route(client, app):
    doc = client.get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint in (
            "api.openapi_json",
            "api.docs",
            "api.reference",
            "api.docs_asset",
        ):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served == documented
    # Every operation carries its permission and, where it takes a body, the body's schema.
    by_rule = {(r.rule, m): r for r in ROUTES for m in r.methods}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["x-permission"], path
            assert "default" in op["responses"]
            if op.get("requestBody"):
                [(kind, content)] = op["requestBody"]["content"].items()
                assert kind == (
                    "multipart/form-data"
                    if (path, method) == ("/api/imports", "post")
                    else "application/json"
                )
                ref = content["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert by_rule[("/lists", "POST")].body is not None
    lists_post = doc["paths"]["/api/lists"]["post"]
    body = doc["components"]["schemas"][
        lists_post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]
    ]
    assert set(body["required"]) == {"slug", "name"}
    assert body["properties"]["opt_in"]["enum"] == ["double", "single"]
    assert lists_post["x-permission"] == "lists:write" and "201" in lists_post["responses"]
    assert doc["paths"]["/api/subscribers"]["get"]["parameters"][0]["in"] == "query"
    upload = doc["components"]["schemas"]["ImportForm"]
    assert upload["properties"]["file"]["format"] == "binary"
    assert doc["paths"]["/api/imports"]["post"]["summary"].endswith("ID).")


def test_reference_page_lists_every_operation_without_scripts(client):
    doc = client.get("/api/openapi.json").json
    page = client.get("/api/docs/reference")
    assert page.status_code == 200 and "<script" not in page.text
    for ops in doc["paths"].values():
        for op in ops.values():
            assert f'id="{op["operationId"]}"' in page.text


def test_docs_page_serves_its_scripts_from_the_app(client):
    page = client.get("/api/docs")
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert scripts and all(src.startswith("/") for src in scripts)  # nothing from elsewhere
    for src in scripts:
        assert client.get(src).status_code == 200
    assert client.get("/api/docs/ui/index.html").status_code == 404  # only the listed files
    assert client.get("/api/docs/ui/..%2f__init__.py").status_code == 404


def test_errors_are_json_with_code_and_message(api):
    resp = api.post("/api/lists", json={"slug": "x"})
    assert resp.status_code == 422 and set(resp.json["error"]) >= {"code", "message", "field"}
    assert api.get("/api/nothing-here").json["error"]["code"] == "not_found"
    assert api.get("/api/audit?per_page=0").status_code == 422
    page = api.get("/api/audit?per_page=1").json
    assert set(page) == {"items", "page", "per_page", "total"}


# -- schemathesis against a live server ----------------------------------------------------------
@pytest.fixture
def live(app, rt, owner_token) -> Iterator[tuple[str, str]]:
    lists.create(rt, slug="news", name="News")
    subscribers.create(
        rt,
        email="ada@example.org",
        name="Ada",
        lists=["news"],
        status="confirmed",
        consent="test",
        origin=Origin(source="test"),
    )
    for i in range(5):  # decoys, so a fuzzed DELETE of a low id rarely revokes the test's own
        accounts.create_token(rt, role="analyst", name=f"decoy {i}")
    token = accounts.create_token(rt, role="owner", name="schemathesis")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}", token
    server.shutdown()


@pytest.mark.slow
def test_api_matches_its_schema(live):
    """Every operation, fuzzed with valid and invalid input: no 5xx, answers as documented."""
    base, token = live
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    checks = [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        content_type_conformance,
    ]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            case.call_and_validate(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, checks=checks
            )

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
