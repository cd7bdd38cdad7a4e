"""The api's direct line to a shard's runner (ports.RunnerLink): POST /queries with the
question for a session's live socket, authenticated as the task endpoints are — a Google-signed
OIDC ID token of the api's own service account for the runner's URL in the cloud (Cloud Run
checks run.invoker, the runner checks the account), the internal secret header locally.

Every failure to get an answer is a 503 with Retry-After (`runner_unreachable`); the runner's
own refusals keep their status and code. The wait is bounded by QUERY_WAIT_S, below the api's
request timeout and above the runner's query timeout (runner/queries.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from wagate import errors
from wagate.adapters.tasks import INTERNAL_TOKEN_HEADER, OidcAuth, SharedSecretAuth, TaskAuth
from wagate.contracts.directory import RunnerQuery

QUERY_WAIT_S = 20.0
CONNECT_TIMEOUT_S = 3.0
TOKEN_REUSE_S = 45 * 60.0  # Google's ID tokens live an hour
UNREACHABLE_RETRY_S = 5

ERROR_BY_STATUS: dict[int, type[errors.WagateError]] = {
    400: errors.ValidationFailed,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    429: errors.RateLimited,
    501: errors.NotImplementedByServer,
}


def google_id_token(audience: str) -> str:
    """An ID token of this process's service account (the metadata server, in the cloud)."""
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    token: str = id_token.fetch_id_token(google_requests.Request(), audience)
    return token


class RunnerClient:
    def __init__(
        self,
        runner_url: Callable[[int], str],
        auth: TaskAuth,
        *,
        wait_s: float = QUERY_WAIT_S,
        mint_token: Callable[[str], str] = google_id_token,
    ) -> None:
        self._runner_url = runner_url
        self._auth = auth
        self._mint = mint_token
        self._http = httpx.Client(
            timeout=httpx.Timeout(wait_s, connect=CONNECT_TIMEOUT_S), trust_env=False
        )
        self._tokens: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _headers(self, audience: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if isinstance(self._auth, SharedSecretAuth):
            headers[INTERNAL_TOKEN_HEADER] = self._auth.secret
            return headers
        assert isinstance(self._auth, OidcAuth)
        with self._lock:
            cached = self._tokens.get(audience)
        if cached is None or cached[0] < time.monotonic():
            try:
                token = self._mint(audience)
            except Exception as e:  # the metadata server, google-auth: no answer means 503
                raise errors.DependencyUnavailable(
                    f"cannot get an ID token for the runner: {type(e).__name__}",
                    code="runner_unreachable",
                    retry_after=UNREACHABLE_RETRY_S,
                ) from None
            cached = (time.monotonic() + TOKEN_REUSE_S, token)
            with self._lock:
                self._tokens[audience] = cached
        headers["Authorization"] = f"Bearer {cached[1]}"
        return headers

    def ask(self, shard: int, query: RunnerQuery) -> Any:
        base = self._runner_url(shard)
        try:
            response = self._http.post(
                f"{base}/queries", content=query.model_dump_json(), headers=self._headers(base)
            )
        except httpx.TimeoutException:
            raise errors.DependencyUnavailable(
                "the session's runner did not answer in time",
                code="runner_unreachable",
                retry_after=UNREACHABLE_RETRY_S,
            ) from None
        except httpx.HTTPError as e:
            raise errors.DependencyUnavailable(
                f"cannot reach the session's runner ({type(e).__name__})",
                code="runner_unreachable",
                retry_after=UNREACHABLE_RETRY_S,
            ) from None
        if response.status_code == 200:
            return response.json()["data"]
        raise _refusal(response)

    def close(self) -> None:
        self._http.close()


def _refusal(response: httpx.Response) -> errors.WagateError:
    """The runner's error answer as the same wagate error, so the api answers it unchanged."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
        details: list[dict[str, Any]] = list(body.get("details") or [])
    except (ValueError, KeyError, TypeError):
        code, message, details = "runner_unreachable", "the runner's answer was not JSON", []
    field = next((str(d["field"]) for d in details if d.get("field")), None)
    kind = ERROR_BY_STATUS.get(response.status_code)
    if kind is not None:
        return kind(message, code=code, field=field, details=details)
    retry_after = response.headers.get("Retry-After")
    if response.status_code == 503:
        return errors.DependencyUnavailable(
            message,
            code=code,
            details=details,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else 5,
        )
    # 401 (the runner refused our credentials) or a 500: nothing the caller did; an operator
    # must look (the runner logged it).
    return errors.DependencyUnavailable(
        f"the session's runner refused the query ({response.status_code} {code})",
        code="runner_unreachable",
        retry_after=UNREACHABLE_RETRY_S,
    )
