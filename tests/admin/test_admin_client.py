"""The admin client against the mock Genesys Cloud over real HTTP: signing in with client
credentials, retries that honour ``Retry-After``, and the errors an admin reads."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from server.admin.client import (
    AdminClient,
    AdminCredentials,
    PlatformHosts,
    next_cursor,
)
from server.devmode.mocks.genesys.config import ADMIN_PERMISSIONS
from server.errors import (
    AdminError,
    CredentialsRejected,
    PermissionMissing,
    PlatformBusy,
    PlatformCallFailed,
    PlatformUnreachable,
)
from tests.devmode.test_mock_genesys import MockServer, run_mock

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock() as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(mock: MockServer) -> Iterator[None]:
    yield
    httpx.delete(f"{mock.origin}/mock/faults")


def add_fault(mock: MockServer, **rule: object) -> None:
    response = httpx.post(f"{mock.origin}/mock/faults", json=rule)
    assert response.status_code == 201, response.text


def credentials(mock: MockServer, secret: str | None = None) -> AdminCredentials:
    config = mock.config
    return AdminCredentials(config.admin_client_id, secret or config.admin_client_secret)


class Sleeps:
    """Records the waits the client asks for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@asynccontextmanager
async def admin(mock: MockServer, sleep: Sleeps | None = None,
                **options: float) -> AsyncIterator[AdminClient]:
    async with httpx.AsyncClient() as http:
        client = AdminClient(http, PlatformHosts.resolve("", mock.origin),
                             sleep=sleep or Sleeps(), **options)  # type: ignore[arg-type]
        yield client


async def test_signs_in_with_client_credentials_and_reads_its_org(mock: MockServer) -> None:
    async with admin(mock) as client:
        await client.sign_in(credentials(mock))
        org = await client.org()
    assert (org.id, org.name) == (mock.config.org_id, mock.config.org_name)


async def test_wrong_secret_is_refused_naming_the_variables(mock: MockServer) -> None:
    async with admin(mock) as client:
        with pytest.raises(CredentialsRejected) as caught:
            await client.sign_in(credentials(mock, secret="not-the-secret"))
    message = str(caught.value)
    assert "ASSIST_ADMIN_CLIENT_SECRET" in message
    assert "not-the-secret" not in message


async def test_calls_before_signing_in_are_refused(mock: MockServer) -> None:
    async with admin(mock) as client:
        with pytest.raises(AdminError, match="sign in"):
            await client.call("GET", "/api/v2/tokens/me", need="(any)")


async def test_429_waits_as_long_as_retry_after_says_then_succeeds(mock: MockServer) -> None:
    add_fault(mock, method="GET", path="/api/v2/tokens/me", status=429, times=2, retryAfter=3)
    sleeps, notices = Sleeps(), list[str]()
    async with admin(mock, sleeps) as client:
        client.on_retry = notices.append
        await client.sign_in(credentials(mock))
        org = await client.org()
    assert org.id == mock.config.org_id
    assert sleeps.waits == [3, 3]
    assert len(notices) == 2


async def test_429_without_retry_after_backs_off_exponentially(mock: MockServer) -> None:
    add_fault(mock, method="POST", path="/oauth/token", status=503, times=3)
    sleeps = Sleeps()
    async with admin(mock, sleeps) as client:
        await client.sign_in(credentials(mock))
    assert sleeps.waits == [1, 2, 4]


async def test_rate_limit_that_outlasts_the_attempts_fails_clearly(mock: MockServer) -> None:
    add_fault(mock, method="GET", path="/api/v2/tokens/me", status=429, times=10, retryAfter=1)
    sleeps = Sleeps()
    async with admin(mock, sleeps, max_attempts=3) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PlatformBusy, match="429"):
            await client.org()
    assert sleeps.waits == [1, 1]


async def test_a_retry_after_longer_than_allowed_is_not_waited_for(mock: MockServer) -> None:
    add_fault(mock, method="GET", path="/api/v2/tokens/me", status=429, retryAfter=600)
    sleeps = Sleeps()
    async with admin(mock, sleeps, max_wait_s=60) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PlatformBusy, match="600 s"):
            await client.org()
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("faults", "status"),
    [([{"status": 429, "times": 10, "retryAfter": 1}], 429),
     ([{"status": 503, "times": 10}], 503),
     # A try answered 503 may have been carried out, whatever the later ones said.
     ([{"status": 503, "times": 1}, {"status": 429, "times": 10, "retryAfter": 1}], 503),
     ([{"status": 503, "times": 1}, {"status": 429, "times": 10, "retryAfter": 600}], 503),
     ([{"status": 429, "times": 10, "retryAfter": 600}], 429)],
    ids=["429s", "503s", "503-then-429s", "503-then-a-long-429", "a-long-429"],
)
async def test_a_busy_platform_error_carries_the_status_that_stopped_the_call(
        mock: MockServer, faults: list[dict[str, int]], status: int) -> None:
    for rule in faults:
        add_fault(mock, method="DELETE", path="/api/v2/integrations/*", **rule)
    async with admin(mock, Sleeps(), max_attempts=3) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PlatformBusy) as raised:
            await client.call("DELETE", "/api/v2/integrations/none", need="x")
    assert raised.value.status == status
    assert ("may have been carried out" in str(raised.value)) == (len(faults) == 2)


async def test_403_names_the_permission_the_call_needs(mock: MockServer) -> None:
    add_fault(mock, method="GET", path="/api/v2/tokens/me", status=403)
    async with admin(mock) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PermissionMissing, match="needs the permission oauth:client:view"):
            await client.call("GET", "/api/v2/tokens/me", need="oauth:client:view")


async def test_roles_and_queues_are_read_whole_and_a_403_names_their_permission() -> None:
    lacking = tuple(p for p in ADMIN_PERMISSIONS if p != "routing:queue:view")
    with run_mock(admin_permissions=lacking) as limited:
        async with admin(limited) as client:
            await client.sign_in(credentials(limited))
            roles = await client.roles()
            with pytest.raises(PermissionMissing) as caught:
                await client.queues()
    assert [r["name"] for r in roles] == ["Agent", "Assist Agent", "Employee", "Master Admin",
                                          "Supervisor"]
    assert all(isinstance(r["userCount"], int) for r in roles)
    message = str(caught.value)
    assert "GET /api/v2/routing/queues was refused (403 missing.permissions)" in message
    assert "needs the permission routing:queue:view" in message


async def test_other_errors_carry_the_platform_status_and_code(mock: MockServer) -> None:
    async with admin(mock) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PlatformCallFailed) as caught:
            await client.call("GET", "/api/v2/no-such-thing", need="(any)")
    assert (caught.value.status, caught.value.code) == (404, "not.found")


async def test_an_unreachable_platform_says_which_host() -> None:
    sock = socket.socket()  # a port nothing listens on: bound, never listening
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        client = AdminClient(http, PlatformHosts.resolve("", f"http://127.0.0.1:{port}"))
        with pytest.raises(PlatformUnreachable, match=r"127\.0\.0\.1"):
            await client.sign_in(AdminCredentials("id", "secret"))
    sock.close()


def test_credentials_come_from_either_family_of_variables() -> None:
    ours = AdminCredentials.from_env({"ASSIST_ADMIN_CLIENT_ID": "a",
                                      "ASSIST_ADMIN_CLIENT_SECRET": "s"})
    genesys = AdminCredentials.from_env({"GENESYSCLOUD_OAUTHCLIENT_ID": "b",
                                         "GENESYSCLOUD_OAUTHCLIENT_SECRET": "t"})
    assert (ours, genesys) == (AdminCredentials("a", "s"), AdminCredentials("b", "t"))
    assert AdminCredentials.from_env({}) is None
    assert "s" not in repr(AdminCredentials("id", "s")).replace("AdminCredentials", "")
    with pytest.raises(AdminError, match="both"):
        AdminCredentials.from_env({"ASSIST_ADMIN_CLIENT_ID": "a"})


def test_hosts_come_from_the_region_table() -> None:
    hosts = PlatformHosts.resolve("eu-west-1")
    assert (hosts.login_base, hosts.api_base) == ("https://login.mypurecloud.ie",
                                                  "https://api.mypurecloud.ie")
    assert PlatformHosts.resolve("prod-euc1").region == "eu-central-1"
    with pytest.raises(AdminError, match="unknown region"):
        PlatformHosts.resolve("mars-north-1")
    with pytest.raises(AdminError, match="http"):
        PlatformHosts.resolve("", "ftp://example.com")


def test_the_cursor_comes_from_next_uri() -> None:
    uri = "/api/v2/knowledge/knowledgebases/k/documents?pageSize=2&after=abc%3D"
    assert next_cursor(uri) == "abc="
    assert next_cursor(None) is None
    assert next_cursor("/api/v2/x?pageSize=2") is None


# Answers the mock never gives: a fake platform in the client's own transport ---------


Answer = Callable[[httpx.Request], httpx.Response]
LISTING = "/api/v2/knowledge/knowledgebases/kb-1/documents"


@asynccontextmanager
async def faked(answer: Answer, *, sign_in: bool = True) -> AsyncIterator[AdminClient]:
    """A client whose calls ``answer`` answers (the token endpoint gives a token unless
    ``answer`` is asked for it, ``sign_in=False``)."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token" and sign_in:
            return httpx.Response(200, json={"access_token": "token-1"})
        return answer(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as http:
        client = AdminClient(http, PlatformHosts.resolve("", "http://platform.test"),
                             sleep=Sleeps())
        if sign_in:
            await client.sign_in(AdminCredentials("id", "secret"))
        yield client


def body(content: bytes, kind: str = "application/json") -> Answer:
    return lambda _request: httpx.Response(200, content=content,
                                           headers={"Content-Type": kind})


async def cursor_listing(client: AdminClient) -> list[list[object]]:
    return [page async for page in client.cursor_pages(LISTING, need="x", params={})]


async def test_a_200_that_is_not_json_is_a_failed_call_not_a_traceback() -> None:
    async with faked(body(b"<html>Sign in to the proxy</html>", "text/html")) as client:
        with pytest.raises(PlatformCallFailed, match=r"not JSON \(text/html\)"):
            await client.call("GET", "/api/v2/tokens/me", need="(any)")


@pytest.mark.parametrize("content", [b"<html>proxy</html>", b"null", b"[]"])
async def test_a_token_answer_without_a_token_object_is_a_failed_call(content: bytes) -> None:
    async with faked(body(content), sign_in=False) as client:
        with pytest.raises(PlatformCallFailed):
            await client.sign_in(AdminCredentials("id", "secret"))


async def test_an_org_answer_that_is_not_an_object_is_a_failed_call() -> None:
    async with faked(body(b"null")) as client:
        with pytest.raises(PlatformCallFailed, match="without an object"):
            await client.org()


@pytest.mark.parametrize(("content", "shape"), [
    (b"{}", "an object without an entities list"),
    (b"null", "nothing"),
    (b"", "nothing"),
    (b'{"entities": {"a": 1}}', "an object without an entities list"),
    (b'["x"]', "a JSON array"),
])
async def test_a_listing_page_without_an_entities_list_is_a_failed_call(
    content: bytes, shape: str
) -> None:
    # Taken for an empty page, it made kb sync remove every synced article.
    async with faked(body(content)) as client:
        with pytest.raises(PlatformCallFailed, match=f"answered {shape}, not a listing"):
            await cursor_listing(client)
        with pytest.raises(PlatformCallFailed, match="not a listing"):
            await client.roles()


async def test_a_cursor_that_comes_back_ends_the_listing_instead_of_looping() -> None:
    calls: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params.get("after"))
        return httpx.Response(200, json={"entities": [{"id": "d"}],
                                         "nextUri": f"{LISTING}?after=same"})

    async with faked(answer) as client:
        with pytest.raises(PlatformCallFailed, match="cursor it gave before"):
            await cursor_listing(client)
    assert calls == [None, "same"]


async def test_a_listing_longer_than_the_page_cap_fails() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params.get("after") or 0)
        return httpx.Response(200, json={"entities": [], "nextUri": f"{LISTING}?after={after + 1}"})

    async with faked(answer) as client:
        with pytest.raises(PlatformCallFailed, match="past 3 pages"):
            async for _page in client.cursor_pages(LISTING, need="x", params={}, max_pages=3):
                pass


async def test_a_numbered_listing_drops_non_objects_and_refuses_a_bad_page_count() -> None:
    pages: dict[str, Any] = {"entities": [{"name": "Agent"}, "junk", 3], "pageCount": 1}
    async with faked(lambda _r: httpx.Response(200, json=pages)) as client:
        assert await client.roles() == [{"name": "Agent"}]
        pages["pageCount"] = "many"
        with pytest.raises(PlatformCallFailed, match="pageCount 'many' is not a number"):
            await client.roles()


async def test_a_503_on_a_post_is_not_retried_as_it_may_have_been_carried_out(
    mock: MockServer
) -> None:
    add_fault(mock, method="POST", path="/api/v2/oauth/clients", status=503, times=1)
    sleeps = Sleeps()
    async with admin(mock, sleeps) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PlatformCallFailed, match="not retried") as caught:
            await client.call("POST", "/api/v2/oauth/clients", need="oauth:client:add",
                              json={"name": "x"})
    assert caught.value.status == 503 and sleeps.waits == []


async def test_a_503_on_a_get_is_retried(mock: MockServer) -> None:
    add_fault(mock, method="GET", path="/api/v2/tokens/me", status=503, times=1)
    sleeps = Sleeps()
    async with admin(mock, sleeps) as client:
        await client.sign_in(credentials(mock))
        assert (await client.org()).id == mock.config.org_id
    assert sleeps.waits == [1]


async def test_a_429_on_a_post_is_retried(mock: MockServer) -> None:
    # A 429 says the request was not processed: repeating it makes nothing twice.
    add_fault(mock, method="POST", path="/api/v2/no-such-thing", status=429, times=1,
              retryAfter=2)
    sleeps = Sleeps()
    async with admin(mock, sleeps) as client:
        await client.sign_in(credentials(mock))
        with pytest.raises(PlatformCallFailed) as caught:
            await client.call("POST", "/api/v2/no-such-thing", need="(any)", json={})
    assert caught.value.status != 429 and sleeps.waits == [2]


@pytest.mark.parametrize(("api_base", "message"), [
    ("http://[bad", "Invalid IPv6 URL"),
    ("http://127.0.0.1:99999", "Port out of range"),
    ("http://127.0.0.1:port", "Port could not be cast"),
    ("http://:8001", "must be an http"),
])
def test_a_bad_api_base_is_an_admin_error_not_a_traceback(api_base: str, message: str) -> None:
    with pytest.raises(AdminError, match=message):
        PlatformHosts.resolve("", api_base)

