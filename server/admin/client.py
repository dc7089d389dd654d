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
#: Methods a 503 is retried for. A 429 says the request was not processed, so any call
#: is retried; a 503 does not, and repeating a POST (or PATCH) that went through anyway
#: could make a second OAuth client or integration.
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Pages a listing may have: past this it is taken to be looping (see ``cursor_pages``).
MAX_PAGES = 10_000
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
            try:
                parts = urlsplit(base)
                # Read now: a bad host or port raises here, not as a traceback mid-call.
                host, _port = parts.hostname, parts.port
            except ValueError as exc:
                raise AdminError(f"--api-base is not a valid URL ({exc}): {api_base!r}") from None
            if parts.scheme not in ("http", "https") or not host:
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

    def __init__(self, error: PlatformBusy, wait_s: float | None) -> None:
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
        answered: set[int] = set()

        async def attempt() -> httpx.Response:
            response = await self._send(
                "POST", url, data={"grant_type": "client_credentials"},
                auth=(credentials.client_id, credentials.client_secret))
            # Asking for a token changes nothing: safe to repeat after a 503.
            self._raise_for_retry(response, "POST /oauth/token", repeatable=True,
                                  answered=answered)
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
        answer = _decoded(response, "POST /oauth/token")
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise PlatformCallFailed("the token endpoint answered without a token", 200, "")
        self._token = token

    async def org(self) -> Org:
        """The admin client's organization (``GET /api/v2/tokens/me``)."""
        info = await self.call("GET", "/api/v2/tokens/me", need="(any)")
        if not isinstance(info, dict):
            raise PlatformCallFailed("GET /api/v2/tokens/me answered without an object", 200, "")
        org = info.get("organization")
        org = org if isinstance(org, dict) else {}
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

        ``need`` names the permission the call requires, for the 403 message. An
        answer that is not JSON raises :class:`PlatformCallFailed`. A 429 is retried;
        a 503 only for a method safe to repeat (``REPEATABLE_METHODS``).
        """
        if self._token is None:
            raise AdminError("sign in before calling the API")
        url = f"{self.hosts.api_base}{path}"
        what = f"{method} {path}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

        repeatable = method.upper() in REPEATABLE_METHODS
        answered: set[int] = set()

        async def attempt() -> httpx.Response:
            response = await self._send(method, url, json=json, params=params, headers=headers)
            self._raise_for_retry(response, what, repeatable=repeatable, answered=answered)
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
        return _decoded(response, what)

    async def pages(
        self, path: str, *, need: str, page_size: int = 100,
        params: Mapping[str, str | int] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The ``entities`` of a numbered listing (``pageNumber``/``pageCount``), page by page.

        ``params`` (a listing's filters) go with every page's request. Entities that
        are not objects are left out; a page that is not a listing, or more than
        ``MAX_PAGES`` pages, raise :class:`PlatformCallFailed`.
        """
        what = f"GET {path}"
        for number in range(1, MAX_PAGES + 1):
            query = {**(params or {}), "pageSize": page_size, "pageNumber": number}
            page = await self.call("GET", path, need=need, params=query)
            yield [e for e in listing_entities(page, what) if isinstance(e, dict)]
            count = page.get("pageCount") or 1
            if not isinstance(count, int) or isinstance(count, bool):
                raise PlatformCallFailed(f"{what}: the listing's pageCount {count!r} is not a "
                                         "number", 200, "")
            if number >= count:
                return
        raise _too_many_pages(what, MAX_PAGES)

    async def cursor_pages(
        self, path: str, *, need: str, params: Mapping[str, str | int],
        max_pages: int = MAX_PAGES,
    ) -> AsyncIterator[list[object]]:
        """The ``entities`` of a cursor listing, following ``nextUri``'s ``after`` cursor.

        Entities are yielded as the platform gave them (the caller decides what to do
        with one that is not an object). A page that is not a listing, a cursor that
        comes back (the listing would never end) or more than ``max_pages`` pages raise
        :class:`PlatformCallFailed`.
        """
        what = f"GET {path}"
        query = dict(params)
        seen: set[str] = set()
        for _ in range(max_pages):
            page = await self.call("GET", path, need=need, params=query)
            yield listing_entities(page, what)
            cursor = next_cursor(page.get("nextUri"))
            if cursor is None:
                return
            if cursor in seen:
                raise PlatformCallFailed(
                    f"{what}: the listing's nextUri gave a cursor it gave before, so it would "
                    "never end; stopped there", 200, "")
            seen.add(cursor)
            query = {**params, "after": cursor}
        raise _too_many_pages(what, max_pages)

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
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            host = httpx.URL(url).host
            raise PlatformUnreachable(
                f"cannot reach Genesys Cloud at {host} ({type(exc).__name__})"
            ) from exc

    def _raise_for_retry(self, response: httpx.Response, what: str, *,
                         repeatable: bool, answered: set[int]) -> None:
        """Raise :class:`_Retry` for an answer worth retrying; ``answered`` collects the
        retryable statuses of the call's tries so far (a 503 among them stays known)."""
        if response.status_code == 503 and not repeatable:
            return  # answered as a failure by the caller: the call may have gone through
        if response.status_code in RETRY_STATUSES:
            answered.add(response.status_code)
            code, message = error_text(response)
            text = (f"{what}: still {response.status_code} {code or ''} after "
                    f"{self.max_attempts} tries ({message})")
            status = response.status_code
            if 503 in answered and status != 503:
                status = 503
                text += "; an earlier try was answered 503, so it may have been carried out"
            raise _Retry(PlatformBusy(text, status), retry_after_seconds(response))

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
                f"{self.max_wait_s:.0f} s; run the command again later", exc.error.status
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
        text = f"{what} failed: {response.status_code} {code}: {message}".replace("  ", " ")
        if response.status_code == 503:  # only a call not safe to repeat gets here
            text += " (not retried: the platform may have carried it out)"
        return PlatformCallFailed(text, response.status_code, code)


def _decoded(response: httpx.Response, what: str) -> Any:
    """The JSON of a successful answer; :class:`PlatformCallFailed` when it is not JSON
    (a proxy's sign-in page, a cut-off body)."""
    try:
        return response.json()
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
        kind = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
        raise PlatformCallFailed(
            f"{what} answered {response.status_code} with a body that is not JSON ({kind}): "
            "is a proxy in the way? Try again later", response.status_code, "") from None


def listing_entities(page: object, what: str) -> list[object]:
    """The ``entities`` of a listing page; :class:`PlatformCallFailed` when the answer is
    not a listing. Never an empty list for a missing one: a sync would take that for
    "everything was deleted"."""
    entities = page.get("entities") if isinstance(page, dict) else None
    if not isinstance(entities, list):
        if page is None:  # an empty body, or JSON null
            shape = "nothing"
        elif isinstance(page, dict):
            shape = "an object without an entities list"
        else:
            shape = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean"}.get(
                type(page), "a JSON number")
        raise PlatformCallFailed(f"{what} answered {shape}, not a listing", 200, "")
    return entities


def _too_many_pages(what: str, pages: int) -> PlatformCallFailed:
    return PlatformCallFailed(
        f"{what}: the listing went on past {pages} pages, so it is taken to be looping; "
        "stopped there", 200, "")


def next_cursor(next_uri: object) -> str | None:
    """The ``after`` cursor of a listing's ``nextUri``, None on the last page."""
    if not isinstance(next_uri, str) or not next_uri:
        return None
    values = parse_qs(urlsplit(next_uri).query).get("after")
    return values[0] if values else None
