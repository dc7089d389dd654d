"""The admin commands' calls to the Genesys Cloud Platform API (client credentials).

``install``, ``uninstall``, ``status`` and ``kb sync`` sign in as an OAuth client
with the Client Credentials grant and call ``/api/v2/`` through one
:class:`AdminClient` (``status`` also reads the org's roles and queues, for
:mod:`server.admin.readiness`). Rate limits (429) and 503s are retried, honouring
``Retry-After``; every other failure is translated here, at the boundary, into
an :class:`AdminError` whose message tells the admin what to do (for a 403, the
permission the call needs). Tokens and secrets are never logged or printed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

from server.auth.regions import find_region
from server.errors import (
    AdminError,
    CredentialsRejected,
    PermissionMissing,
    PlatformBusy,
    PlatformCallFailed,
    PlatformUnreachable,
)
from server.retry_after import retry_after_seconds

#: Environment variables of the admin client, first found wins. The second pair
#: are the names Genesys's own tools (CLI, Terraform provider) read.
CLIENT_ID_VARS = ("ASSIST_ADMIN_CLIENT_ID", "GENESYSCLOUD_OAUTHCLIENT_ID")
CLIENT_SECRET_VARS = ("ASSIST_ADMIN_CLIENT_SECRET", "GENESYSCLOUD_OAUTHCLIENT_SECRET")
#: Statuses worth retrying: the platform asks to slow down or is briefly unavailable.
RETRY_STATUSES = frozenset({429, 503})
#: The org's roles, and the permission that lists them.
ROLES_PATH = "/api/v2/authorization/roles"
ROLE_VIEW = "authorization:role:view"
#: The org's ACD queues, and the permission that lists them.
QUEUES_PATH = "/api/v2/routing/queues"
QUEUE_VIEW = "routing:queue:view"


@dataclass(frozen=True)
class AdminCredentials:
    """A Client Credentials OAuth client (the secret is kept out of ``repr``)."""

    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AdminCredentials | None:
        """Read ``ASSIST_ADMIN_CLIENT_ID``/``_SECRET`` (or Genesys's own variable names).

        None when neither is set; :class:`AdminError` when only one is.
        """
        env = os.environ if environ is None else environ
        client_id = next((env[v] for v in CLIENT_ID_VARS if env.get(v)), "")
        secret = next((env[v] for v in CLIENT_SECRET_VARS if env.get(v)), "")
        if not client_id and not secret:
            return None
        if not client_id or not secret:
            raise AdminError(
                "set both ASSIST_ADMIN_CLIENT_ID and ASSIST_ADMIN_CLIENT_SECRET "
                "(a Client Credentials OAuth client of the org)"
            )
        return cls(client_id, secret)


@dataclass(frozen=True)
class PlatformHosts:
    """The login and API hosts of one Genesys Cloud region (or of dev mode's mock)."""

    login_base: str
    api_base: str
    region: str

    @classmethod
    def resolve(cls, region: str, api_base: str | None = None) -> PlatformHosts:
        """The hosts of ``region`` (name, domain or ``gcTargetEnv``), or of ``api_base``.

        ``api_base`` (dev mode's mock) serves both the login host and the API.
        """
        if api_base:
            base = api_base.rstrip("/")
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise AdminError(f"--api-base must be an http(s) URL, got {api_base!r}")
            return cls(base, base, region or parts.netloc)
        found = find_region(region)
        if found is None:
            raise AdminError(
                f"unknown region {region!r}: use a region name such as us-east-1 or "
                "eu-west-1, its domain, or its gcTargetEnv"
            )
        return cls(found.login_base, found.api_base, found.name)


@dataclass(frozen=True)
class Org:
    """The organization the admin client belongs to."""

    id: str
    name: str


Sleep = Callable[[float], Awaitable[None]]
RetryNotice = Callable[[str], None]


class _Retry(Exception):
    """A retryable answer (429/503), with how long the platform asked us to wait."""

    def __init__(self, error: AdminError, wait_s: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait_s = wait_s


def error_text(response: httpx.Response) -> tuple[str, str]:
    """``(code, message)`` of a platform ``ErrorBody`` (or of an OAuth error answer)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.reason_phrase
    if not isinstance(body, dict):
        return "", response.reason_phrase
    code = str(body.get("code") or body.get("error") or "")
    message = str(body.get("message") or body.get("error_description") or response.reason_phrase)
    return code, message


class AdminClient:
    """Calls to one org's Platform API as its admin OAuth client.

    Use :meth:`sign_in` first. ``max_attempts`` bounds the tries of one call
    (429/503 are retried after ``Retry-After``, or 1, 2, 4... s without it); a wait
    longer than ``max_wait_s`` is not waited for: the call fails at once.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        hosts: PlatformHosts,
        *,
        max_attempts: int = 5,
        max_wait_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        on_retry: RetryNotice | None = None,
    ) -> None:
        self.http = http
        self.hosts = hosts
        self.max_attempts = max_attempts
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.on_retry = on_retry
        self._token: str | None = None

    # Signing in ----------------------------------------------------------

    async def sign_in(self, credentials: AdminCredentials) -> None:
        """Get a token with the Client Credentials grant."""
        url = f"{self.hosts.login_base}/oauth/token"

        async def attempt() -> httpx.Response:
            response = await self._send(
                "POST", url, data={"grant_type": "client_credentials"},
                auth=(credentials.client_id, credentials.client_secret))
            self._raise_for_retry(response, "POST /oauth/token")
            return response

        response = await self._with_retries(attempt)
        if response.status_code in (400, 401):
            code, message = error_text(response)
            raise CredentialsRejected(
                f"Genesys refused the admin client credentials ({code or response.status_code}: "
                f"{message}). Check ASSIST_ADMIN_CLIENT_ID and ASSIST_ADMIN_CLIENT_SECRET, that "
                f"the client uses the Client Credentials grant, and that it belongs to region "
                f"{self.hosts.region}."
            )
        if response.is_error:
            raise self._failure(response, "POST /oauth/token")
        token = response.json().get("access_token")
        if not isinstance(token, str) or not token:
            raise PlatformCallFailed("the token endpoint answered without a token", 200, "")
        self._token = token

    async def org(self) -> Org:
        """The admin client's organization (``GET /api/v2/tokens/me``)."""
        info = await self.call("GET", "/api/v2/tokens/me", need="(any)")
        org = info.get("organization") or {}
        return Org(str(org.get("id", "")), str(org.get("name", "")))

    async def roles(self) -> list[dict[str, Any]]:
        """Every role of the org, each with its ``userCount`` (``DomainOrganizationRole``).

        ``GET /api/v2/authorization/roles?userCount=true``, all pages; needs
        ``authorization:role:view`` (:class:`PermissionMissing` without it).
        """
        return await self._all(ROLES_PATH, need=ROLE_VIEW, params={"userCount": "true"})

    async def queues(self) -> list[dict[str, Any]]:
        """Every ACD queue of the org (``Queue``: ``name``, ``enableTranscription``...).

        ``GET /api/v2/routing/queues``, all pages; needs ``routing:queue:view``.
        """
        return await self._all(QUEUES_PATH, need=QUEUE_VIEW)

    # Calls ---------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        need: str,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """One API call; the decoded JSON answer (None for an empty one).

        ``need`` names the permission the call requires, for the 403 message.
        """
        if self._token is None:
            raise AdminError("sign in before calling the API")
        url = f"{self.hosts.api_base}{path}"
        what = f"{method} {path}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

        async def attempt() -> httpx.Response:
            response = await self._send(method, url, json=json, params=params, headers=headers)
            self._raise_for_retry(response, what)
            return response

        response = await self._with_retries(attempt)
        if response.status_code == 401:
            raise CredentialsRejected(
                f"{what}: Genesys refused the admin token (401). Sign in again; if it keeps "
                "happening the OAuth client may have been deleted or disabled."
            )
        if response.status_code == 403:
            code, message = error_text(response)
            raise PermissionMissing(
                f"{what} was refused (403 {code}): {message}\n"
                f"The admin OAuth client's role needs the permission {need}."
            )
        if response.is_error:
            raise self._failure(response, what)
        if not response.content:
            return None
        return response.json()

    async def pages(
        self, path: str, *, need: str, page_size: int = 100,
        params: Mapping[str, str | int] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The ``entities`` of a numbered listing (``pageNumber``/``pageCount``), page by page.

        ``params`` (a listing's filters) go with every page's request.
        """
        number = 1
        while True:
            query = {**(params or {}), "pageSize": page_size, "pageNumber": number}
            page = await self.call("GET", path, need=need, params=query)
            yield list(page.get("entities") or [])
            if number >= int(page.get("pageCount") or 1):
                return
            number += 1

    async def cursor_pages(
        self, path: str, *, need: str, params: Mapping[str, str | int]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The ``entities`` of a cursor listing, following ``nextUri``'s ``after`` cursor."""
        query = dict(params)
        while True:
            page = await self.call("GET", path, need=need, params=query)
            yield list(page.get("entities") or [])
            cursor = next_cursor(page.get("nextUri"))
            if cursor is None:
                return
            query = {**params, "after": cursor}

    # Plumbing ------------------------------------------------------------

    async def _all(
        self, path: str, *, need: str, params: Mapping[str, str | int] | None = None
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async for page in self.pages(path, need=need, params=params):
            found.extend(page)
        return found

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            host = httpx.URL(url).host
            raise PlatformUnreachable(
                f"cannot reach Genesys Cloud at {host} ({type(exc).__name__})"
            ) from exc

    def _raise_for_retry(self, response: httpx.Response, what: str) -> None:
        if response.status_code in RETRY_STATUSES:
            code, message = error_text(response)
            error = PlatformBusy(
                f"{what}: still {response.status_code} {code or ''} after "
                f"{self.max_attempts} tries ({message})"
            )
            raise _Retry(error, retry_after_seconds(response))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.wait_s if isinstance(exc, _Retry) else None
        return asked if asked is not None else float(2 ** (state.attempt_number - 1))

    def _before_sleep(self, state: RetryCallState) -> None:
        wait = self._wait(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and wait > self.max_wait_s:
            raise PlatformBusy(
                f"{exc.error}: Genesys asks to wait {wait:.0f} s, longer than "
                f"{self.max_wait_s:.0f} s; run the command again later"
            )
        if self.on_retry is not None:
            self.on_retry(f"Genesys asked to slow down; retrying in {wait:g} s")

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except _Retry as exc:
            raise exc.error from None

    def _failure(self, response: httpx.Response, what: str) -> PlatformCallFailed:
        code, message = error_text(response)
        return PlatformCallFailed(
            f"{what} failed: {response.status_code} {code}: {message}".replace("  ", " "),
            response.status_code, code,
        )


def next_cursor(next_uri: object) -> str | None:
    """The ``after`` cursor of a listing's ``nextUri``, None on the last page."""
    if not isinstance(next_uri, str) or not next_uri:
        return None
    values = parse_qs(urlsplit(next_uri).query).get("after")
    return values[0] if values else None
