"""The OpenAPI document is generated from the code and checked in; it must not drift."""

import json
from pathlib import Path

from functions.api import router
from functions.openapi import build, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_checked_in_document_matches_the_code() -> None:
    assert DOC.read_text() == render(), (
        "docs/openapi.json is stale: run `python -m functions.openapi > docs/openapi.json`"
    )


def test_every_public_route_is_documented_with_its_errors() -> None:
    document = build(router.routes)
    assert document["openapi"] == "3.1.0"
    documented = {(p, m) for p, ops in document["paths"].items() for m in ops}
    assert ("/v1/sessions/{session_id}/messages", "post") in documented
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            assert "500" in op["responses"] and "400" in op["responses"], (path, method)
            for response in op["responses"].values():
                for media in response.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref:
                        assert ref.split("/")[-1] in document["components"]["schemas"]


def test_the_send_body_schema_comes_from_the_pydantic_model() -> None:
    schemas = build(router.routes)["components"]["schemas"]
    send = schemas["SendMessageRequest"]
    assert set(send["required"]) == {"to", "content"}
    assert send["additionalProperties"] is False
    assert json.dumps(send).count("discriminator") >= 1


def test_the_checked_in_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename

    document, _ = read_from_filename(str(DOC))
    validate(document)  # raises on an invalid document (duplicate operationIds among others)


def test_every_operation_has_its_own_meaningful_id() -> None:
    document = build(router.routes)
    ids = {
        (path, method): op["operationId"]
        for path, operations in document["paths"].items()
        for method, op in operations.items()
    }
    assert len(set(ids.values())) == len(ids), ids
    assert ids[("/v1/sessions", "get")] == "list_sessions"
    assert ids[("/v1/sessions/{session_id}", "get")] == "get_session"
    assert ids[("/v1/sessions", "post")] == "create_session"


def test_the_session_create_body_may_be_left_out_as_documented() -> None:
    operation = build(router.routes)["paths"]["/v1/sessions"]["post"]
    assert operation["requestBody"]["required"] is False
    assert "405" in operation["responses"] and "Allow" in operation["responses"]["405"]["headers"]
