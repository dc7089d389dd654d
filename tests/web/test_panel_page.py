from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from server.app import create_app
from server.web.panel import CLIENT_APP_SDK, content_security_policy
from tests.asgi import Response, TestClient, asgi_client
from tests.factories import make_settings

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


class _Root(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.scripts: list[dict[str, str | None]] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id") == "ap-root":
            self.root = values
        if tag == "script":
            self.scripts.append(values)
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


@pytest.fixture
def panel(sample_kb_path: Path) -> Iterator[TestClient]:
    settings = make_settings(kb_path=sample_kb_path, genesys_regions=("prod", "prod-euw1"),
                        oauth_client_id="client-1", public_url="https://panel.example")
    with asgi_client(create_app(settings)) as client:
        yield client


def _page(client: TestClient, **params: str) -> tuple[Response, _Root]:
    response = client.get("/panel", params=params)
    parsed = _Root()
    parsed.feed(response.text)
    return response, parsed


def test_page_carries_its_configuration_in_data_attributes(panel: TestClient) -> None:
    response, page = _page(panel, conversationId=CONVERSATION,
                           gcHostOrigin="https://apps.mypurecloud.ie", gcTargetEnv="prod-euw1",
                           langTag="fr-FR")
    assert response.status_code == 200
    assert page.root["data-conversation-id"] == CONVERSATION
    assert page.root["data-gc-host-origin"] == "https://apps.mypurecloud.ie"
    assert page.root["data-gc-target-env"] == "prod-euw1"
    assert page.root["data-state-url"] == "/auth/state"
    assert page.root["data-session-url"] == "/api/session"
    assert page.root["data-popup-sign-in"] == "false"
    assert page.root["data-lang-tag"] == "fr-FR"
    assert '<html lang="fr-FR">' in response.text
    assert page.root["data-feedback-url"] == "/api/feedback"
    assert page.root["data-stall-ms"] == "20000"  # the page's default: pings every 15 s


@pytest.mark.parametrize(("ping_s", "stall_ms"), [(15, "20000"), (60, "65000"), (0.5, "20000")])
def test_the_pages_stall_watchdog_outwaits_the_servers_keepalive(
        sample_kb_path: Path, ping_s: float, stall_ms: str) -> None:
    """Regression: the page waited 20 s for a byte whatever ASSIST_SSE_PING_S said, so
    a ping interval over that cut healthy, quiet streams."""
    settings = make_settings(kb_path=sample_kb_path, sse_ping_s=ping_s)
    with asgi_client(create_app(settings)) as client:
        _, page = _page(client, conversationId=CONVERSATION)
    assert page.root["data-stall-ms"] == stall_ms


@pytest.mark.parametrize("name", ["gcUsePopupAuth", "pcUsePopupAuth", "usePopupAuth"])
def test_popup_sign_in_follows_the_url_variable_under_each_of_its_names(
        panel: TestClient, name: str) -> None:
    _, page = _page(panel, conversationId=CONVERSATION, gcTargetEnv="prod", **{name: "true"})
    assert page.root["data-popup-sign-in"] == "true"
    _, page = _page(panel, conversationId=CONVERSATION, gcTargetEnv="prod", **{name: "false"})
    assert page.root["data-popup-sign-in"] == "false"


def test_a_framed_panel_loads_the_client_app_sdk_ahead_of_its_modules(panel: TestClient) -> None:
    """The lifecycle handshake is answered at page load: the SDK is a classic script
    that runs before main.js, whatever sign-in then does."""
    _, page = _page(panel, conversationId=CONVERSATION, gcTargetEnv="prod-euw1",
                    gcHostOrigin="https://apps.mypurecloud.ie")
    assert page.root["data-client-app-sdk"] == CLIENT_APP_SDK
    assert [(s.get("src"), s.get("type")) for s in page.scripts][:1] == [(CLIENT_APP_SDK, None)]
    assert page.scripts[1].get("type") == "module"
    # Not framed by a desktop (no gcHostOrigin): no SDK.
    _, page = _page(panel, conversationId=CONVERSATION, gcTargetEnv="prod")
    assert page.root["data-client-app-sdk"] == ""
    assert all("client-app-sdk" not in str(s.get("src")) for s in page.scripts)


# Region tables spell its environment both ways; an Agent Desktop sending "eusc" got a 400.
@pytest.mark.parametrize("target_env", ["eusc-edee1-core", "eusc"])
def test_the_eu_sovereign_region_is_a_region_like_the_others(sample_kb_path: Path,
                                                             target_env: str) -> None:
    settings = make_settings(kb_path=sample_kb_path, genesys_regions=("eusc-de-east-1",),
                             oauth_client_id="client-1", public_url="https://panel.example")
    with asgi_client(create_app(settings)) as client:
        response, page = _page(client, conversationId=CONVERSATION, gcTargetEnv=target_env,
                               gcHostOrigin="https://apps.edee1.eusc-pure.cloud")
    assert response.status_code == 200
    assert page.root["data-gc-target-env"] == "eusc-edee1-core"
    assert page.root["data-client-app-sdk"] == CLIENT_APP_SDK
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://apps.edee1.eusc-pure.cloud;" in csp
    assert "https://api.edee1.eusc-pure.cloud wss://streaming.edee1.eusc-pure.cloud" in csp
    assert "https://login.edee1.eusc-pure.cloud" in csp


VENDOR = Path(__file__).resolve().parents[2] / "frontend" / "static" / "vendor"


def test_the_vendored_client_app_sdk_is_the_file_its_readme_describes() -> None:
    """The README names the package version, the version the file reports to Agent
    Desktop, and the file's hash; the page loads exactly that file."""
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    sdk = VENDOR / Path(CLIENT_APP_SDK).name
    data = sdk.read_bytes()
    assert hashlib.sha256(data).hexdigest() in readme
    package = re.search(r"purecloud-client-app-sdk-(\d+\.\d+\.\d+)\.min\.js", sdk.name)
    assert package is not None
    assert f"`purecloud-client-app-sdk` {package[1]}," in readme
    reported = re.search(rb'key:"version",get:function\(\)\{return"([0-9.]+)"\}', data)
    assert reported is not None
    assert f"reports itself as {reported[1].decode()}" in readme
    assert data.count(reported[1]) == 3  # version, about() and protocolAgentVersion
    assert b"sourceMappingURL" not in data


def test_page_has_no_inline_script_and_a_strict_csp(panel: TestClient) -> None:
    response, page = _page(panel, conversationId=CONVERSATION, gcTargetEnv="prod")
    assert page.inline_scripts == 0
    assert [s.get("type") for s in page.scripts] == ["module"]
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert ("frame-ancestors 'self' https://apps.mypurecloud.com https://apps.mypurecloud.ie"
            in csp)
    assert "frame-src 'self' https://login.mypurecloud.com https://login.mypurecloud.ie" in csp
    assert "'unsafe-inline'" not in csp
    # The ask box is submitted by the page's script alone: a native submit (before the
    # script loads) must not put the agent's question in a URL.
    assert "form-action 'none'" in csp
    static = panel.get(str(page.scripts[0]["src"]))
    assert static.status_code == 200
    assert "javascript" in static.headers["content-type"]


@pytest.mark.parametrize("path", ["/static/nowhere.js", "/static/%2e%2e/%2e%2e/server/app.py"])
def test_a_static_file_that_is_not_there_is_a_json_404(panel: TestClient, path: str) -> None:
    response = panel.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_parameters_are_escaped_not_executed(panel: TestClient) -> None:
    hostile = '"><script>alert(1)</script>'
    response, page = _page(panel, conversationId=CONVERSATION, gcTargetEnv="prod",
                           langTag=hostile)
    assert "<script>alert(1)</script>" not in response.text
    assert page.root["data-lang-tag"] == "en-US"


@pytest.mark.parametrize(("params", "code"), [
    ({"conversationId": "not-a-uuid", "gcTargetEnv": "prod"}, "bad_request"),
    ({"conversationId": CONVERSATION, "gcTargetEnv": "prod-apne2"}, "unknown_region"),
    ({"conversationId": CONVERSATION, "gcTargetEnv": "nowhere"}, "unknown_region"),
    # A desktop of one region claiming another region's target env.
    ({"conversationId": CONVERSATION, "gcTargetEnv": "prod",
      "gcHostOrigin": "https://apps.mypurecloud.ie"}, "unknown_region"),
    # Host origins that are not a configured Agent Desktop.
    ({"conversationId": CONVERSATION, "gcTargetEnv": "prod",
      "gcHostOrigin": "https://apps.evil.example"}, "unknown_host_origin"),
    ({"conversationId": CONVERSATION, "gcTargetEnv": "prod",
      "gcHostOrigin": "https://apps.mypurecloud.jp"}, "unknown_host_origin"),
    ({"conversationId": CONVERSATION, "gcTargetEnv": "prod",
      "gcHostOrigin": '"><script>alert(1)</script>'}, "unknown_host_origin"),
    ({"conversationId": CONVERSATION, "gcTargetEnv": "prod",
      "gcHostOrigin": "https://user@apps.mypurecloud.com"}, "unknown_host_origin"),
    # Regression: hosts urlsplit refuses (ValueError) were a 500 with a traceback.
    ({"conversationId": CONVERSATION, "gcHostOrigin": "http://[::1"}, "unknown_host_origin"),
    ({"conversationId": CONVERSATION, "gcHostOrigin": "http://[zz]"}, "unknown_host_origin"),
])
def test_bad_parameters_are_400(panel: TestClient, params: dict[str, str], code: str) -> None:
    response = panel.get("/panel", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == code


def test_sign_in_callback_renders_without_conversation(panel: TestClient) -> None:
    response, page = _page(panel, code="abc", state="xyz")
    assert response.status_code == 200
    assert page.root["data-conversation-id"] == ""


def test_dev_override_adds_the_mock_to_connect_and_frame_ancestors() -> None:
    settings = make_settings(genesys_api_base="http://127.0.0.1:8001",
                             extra_frame_ancestors="http://127.0.0.1:8001")
    csp = content_security_policy(settings)
    assert "http://127.0.0.1:8001 ws://127.0.0.1:8001" in csp
    assert csp.split("frame-ancestors ")[1].startswith(
        "'self' https://apps.mypurecloud.com http://127.0.0.1:8001;")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"genesys_regions": ("mars-1",)}, "unknown region 'mars-1'"),
    ({"session_secret": None}, "ASSIST_SESSION_SECRET must be set"),
    ({"session_secret": "short"}, "at least 16 characters"),
    ({"allowed_orgs": ()}, "ASSIST_ALLOWED_ORGS must be set"),
    ({"oauth_client_id": ""}, "ASSIST_OAUTH_CLIENT_ID must be set"),
])
def test_settings_it_cannot_run_with_fail_at_start(
        tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(make_settings(kb_path=tmp_path / "kb.db", **overrides))
