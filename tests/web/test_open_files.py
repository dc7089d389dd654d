"""The open-file limit against the streams a worker admits: lifted at ``serve``, and the
stream cap kept within it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from bench.procs import Certificate
from server.devmode.mocks.llm import MockLLMConfig, create_mock_llm_app
from server.web.open_files import RESERVED, files_per_stream, stream_cap
from tests.factories import bearer, make_settings
from tests.serve_process import free_port, running_serve, serve_env
from tests.servers import serve, serve_http2

CONVERSATION = "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
QUESTION = {"conversationId": CONVERSATION, "trigger": "manual",
            "query": "how long does a refund take"}


def test_the_cap_is_the_setting_where_the_limit_leaves_room() -> None:
    assert stream_cap(1000, 2, 20_000) == 1000
    assert stream_cap(1000, 2, None) == 1000  # no limit to keep within


def test_the_cap_shrinks_to_the_streams_the_limit_holds() -> None:
    assert stream_cap(1000, 2, 1024) == (1024 - RESERVED) // 2
    assert stream_cap(1000, 1, 1024) == 1024 - RESERVED
    assert stream_cap(1000, 2, RESERVED) == 1  # never none at all


def test_a_stream_holds_two_files_only_with_the_model_over_http1() -> None:
    openai = {"generator": "openai", "openai_base_url": "http://127.0.0.1:9/v1",
              "openai_api_key": "k"}
    assert files_per_stream(make_settings(**openai)) == 2
    assert files_per_stream(make_settings(**openai, model_http2=True)) == 1
    assert files_per_stream(make_settings(**openai, model_http2=False), "h2") == 2
    assert files_per_stream(make_settings(generator="extractive")) == 1


def test_under_auto_a_stream_counts_two_files_until_the_model_agrees_to_http2() -> None:
    settings = make_settings(generator="openai", openai_base_url="https://model.test/v1",
                             openai_api_key="k")
    assert settings.model_http2 == "auto"
    assert files_per_stream(settings) == 2  # not yet known: the worst case
    assert files_per_stream(settings, "http/1.1") == 2
    assert files_per_stream(settings, "h2") == 1


def test_the_soft_limit_is_lifted_to_the_hard_one() -> None:
    script = ("import resource\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))\n"
              "from server.web.open_files import lift_soft_limit\n"
              "print(lift_soft_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["1024", "1024", "1024"]


def test_a_worker_short_of_open_files_refuses_streams_it_cannot_hold(
        sample_kb_path: Path) -> None:
    """Regression: at a soft limit of 1,024 a worker admitted up to ASSIST_MAX_STREAMS,
    and past about 450 streams each new one failed its model connect."""
    limit = RESERVED + 2 * 5  # room for 5 streams over HTTP/1.1
    llm_app = create_mock_llm_app(MockLLMConfig(fault="endless", tokens_per_second=20))
    with serve(llm_app) as llm, running_serve(
            [], serve_env(free_port(), sample_kb_path, llm, 5), open_files=limit) as running:
        running.wait_for("Uvicorn running on")
        [warning] = running.wait_for("ASSIST_MAX_STREAMS is 1000")
        assert f"may open {limit} files, 2 a stream: it admits 5 streams" in warning
        statuses = asyncio.run(_open_streams(running.url, 6))
    assert statuses == [200] * 5 + [503]


def test_a_worker_admits_twice_the_streams_once_its_https_model_agrees_to_http2(
        sample_kb_path: Path, certificate: Certificate) -> None:
    """ASSIST_MODEL_HTTP2=auto, the default: two files a stream are counted until the
    model's TLS handshake has picked HTTP/2, then one."""
    limit = RESERVED + 2 * 5  # room for 5 streams over HTTP/1.1, 10 over HTTP/2
    llm_app = create_mock_llm_app(MockLLMConfig(fault="endless", tokens_per_second=20))
    env = serve_env(free_port(), sample_kb_path, "", 5, SSL_CERT_FILE=str(certificate.authority))
    with serve_http2(llm_app, certfile=str(certificate.chain),
                     keyfile=str(certificate.key)) as llm:
        env["ASSIST_OPENAI_BASE_URL"] = f"{llm}/v1"
        with running_serve([], env, open_files=limit) as running:
            running.wait_for("Uvicorn running on")
            running.wait_for("2 a stream: it admits 5 streams")
            # One answer first: its model request is the handshake that tells.
            with httpx.stream("POST", f"{running.url}/api/assist/stream", timeout=30,
                              headers=bearer(CONVERSATION), json=QUESTION) as response:
                assert "event: delta" in (line for line in response.iter_lines())
            running.wait_for("speaks HTTP/2")
            running.wait_for("1 a stream: it admits 10 streams")
            statuses = asyncio.run(_open_streams(running.url, 11))
    assert statuses == [200] * 10 + [503]


async def _open_streams(base: str, n: int) -> list[int]:
    """Open ``n`` streams one after another, each held open (its first event read);
    the status of each."""
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        held: list[tuple[httpx.Response, AsyncIterator[str]]] = []
        for _ in range(n):
            request = client.build_request(
                "POST", f"{base}/api/assist/stream", headers=bearer(CONVERSATION),
                json=QUESTION)
            response = await client.send(request, stream=True)
            statuses.append(response.status_code)
            if response.status_code == 200:
                # Admitted and streaming; the reader kept, as dropping it closes the stream.
                lines = response.aiter_lines()
                await anext(lines)
                held.append((response, lines))
            else:
                body = json.loads(await response.aread())
                assert body["error"] == "over_capacity"
                await response.aclose()
        for response, _ in held:
            await response.aclose()
    return statuses
