import json

from wagate import errors
from wagate.http import render_error, status_for


def test_every_error_type_has_one_status() -> None:
    cases = {
        errors.ValidationFailed("x"): 400,
        errors.Unauthenticated("x"): 401,
        errors.Forbidden("x"): 403,
        errors.NotFound("x"): 404,
        errors.StaleGeneration("x"): 409,
        errors.TaskAlreadyExists("x"): 409,
        errors.PayloadTooLarge("x"): 413,
        errors.RateLimited("x", retry_after=3): 429,
        errors.DependencyUnavailable("x"): 503,
        errors.TransientSendError("x"): 503,
        errors.Internal("x"): 500,
        RuntimeError("boom"): 500,
    }
    for error, status in cases.items():
        assert status_for(error) == status, error


def test_error_body_names_the_field_and_request() -> None:
    status, body, _ = render_error(errors.ValidationFailed("bad", field="to"), "req-1")
    parsed = json.loads(body)
    assert status == 400
    assert parsed == {
        "error": {
            "code": "validation_failed",
            "message": "bad",
            "details": [{"field": "to", "message": "bad"}],
            "request_id": "req-1",
        }
    }


def test_internal_errors_never_leak_their_message() -> None:
    status, body, _ = render_error(RuntimeError("secret path /etc/x"), "req-2")
    assert status == 500
    assert b"/etc/x" not in body and b"Traceback" not in body


def test_retry_after_is_rounded_up_and_present_on_503() -> None:
    _, _, headers = render_error(errors.RateLimited("slow down", retry_after=1.2), "r")
    assert headers["Retry-After"] == "2"
    _, _, headers = render_error(errors.DependencyUnavailable("down"), "r")
    assert headers["Retry-After"] == "5"
