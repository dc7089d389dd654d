"""The benchmark peer: the thread-per-stream relay of common Flask + ``requests`` tutorials.

This is the design people usually build instead of ours, kept plain on purpose so
the benchmark measures the design and not a strawman or a tuned rival. Each
``POST /api/assist/stream`` holds one server thread (werkzeug's threaded server,
one thread per connection) for the whole answer: it searches the same SQLite FTS5
knowledge base the panel uses (read-only, one connection per thread), builds a
grounded prompt, calls an OpenAI-compatible ``/chat/completions`` with a blocking
``requests.post(..., stream=True)`` and relays every upstream token as its own SSE
``delta``. The SSE events are named and shaped like the panel's (README.md, the
stream route) so one client can read both.

What it leaves out, like the tutorials do: no auth, no delta aggregation, no
stall watchdog or read timeout (a silent model holds the thread until it gives
up), no keep-alive pings, no retries, no circuit breaker, no admission limits,
and ``done.metrics`` is empty.

    python -m bench.peers.flask_relay --port 8100 --kb kb.db --model-url http://127.0.0.1:8001/v1
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import requests
from flask import Flask, Response, jsonify, request, stream_with_context
from werkzeug.serving import make_server

SYSTEM_PROMPT = (
    "You help a contact-center agent. Answer the customer's question in at most three"
    " short sentences using only the articles given, citing each sentence as [n]."
)


class UpstreamError(Exception):
    """The model answered with an HTTP error; the message is the ``done.stop_reason``."""


def _sse(sid: str, seq: int, event: str, data: dict[str, Any]) -> str:
    """One SSE message; ``data`` gets the suggestion id first, like the panel's events."""
    body = json.dumps({"id": sid, **data}, ensure_ascii=False)
    return f"id: {sid}.{seq}\nevent: {event}\ndata: {body}\n\n"


def _parse(body: Any) -> tuple[str, str, str | None] | str:
    """``(trigger, query, requestId)`` from the request body, or an error message."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("conversationId"), str) or not body["conversationId"]:
        return "conversationId is required"
    trigger = body.get("trigger")
    if trigger not in ("utterance", "manual"):
        return "trigger must be 'utterance' or 'manual'"
    request_id, utterances = body.get("requestId"), body.get("utterances") or []
    if request_id is not None and not isinstance(request_id, str):
        return "requestId must be a string"
    if not isinstance(utterances, list) or any(
            not isinstance(u, dict) or not isinstance(u.get("text"), str) for u in utterances):
        return "utterances must be a list of {speaker, text}"
    query = body.get("query")
    if query is None:
        customer = [u["text"] for u in utterances if u.get("speaker") == "customer"]
        query = customer[-1] if customer else ""
    if not isinstance(query, str) or not query.strip():
        return "a query or a customer utterance is required"
    return trigger, query.strip(), request_id


def create_app(kb_path: Path, model_url: str, model: str = "mock-assist-1",
               api_key: str | None = None, top_k: int = 3) -> Flask:
    """The peer's Flask app, reading ``kb_path`` and streaming from ``model_url`` (…/v1)."""
    if not Path(kb_path).is_file():
        raise FileNotFoundError(f"no knowledge base at {kb_path}")
    app = Flask(__name__)
    local = threading.local()
    kb_uri = Path(kb_path).resolve().as_uri() + "?mode=ro"
    completions_url = model_url.rstrip("/") + "/chat/completions"

    def search(query: str) -> list[dict[str, Any]]:
        words = re.findall(r"\w+", query.lower())
        if not words:
            return []
        if not hasattr(local, "db"):  # an sqlite3 connection stays in the thread that made it
            local.db = sqlite3.connect(kb_uri, uri=True, check_same_thread=True)
        rows = local.db.execute(
            # Plain BM25 over the panel's passage index, a passage per source.
            "SELECT a.id, a.title, a.url, snippet(passages_fts, 2, '', '', '…', 32),"
            " bm25(passages_fts), p.text FROM passages_fts"
            " JOIN passages p ON p.rowid = passages_fts.rowid"
            " JOIN articles a ON a.rowid = p.article_rowid"
            " WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts) LIMIT ?",
            (" OR ".join(f'"{w}"' for w in words), top_k),
        ).fetchall()
        return [{"id": r[0], "title": r[1], "url": r[2], "snippet": r[3],
                 "score": round(-r[4], 4), "text": r[5]} for r in rows]

    def messages(query: str, sources: list[dict[str, Any]]) -> list[dict[str, str]]:
        articles = "".join(
            f'<article index="{i}" title="{escape(s["title"])}">\n{s["text"]}\n</article>\n'
            for i, s in enumerate(sources, start=1)
        )
        user = f"<articles>\n{articles}</articles>\n\nQuestion: {query}\n"
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    @app.post("/api/assist/stream")
    def assist_stream() -> Response | tuple[Response, int]:
        parsed = _parse(request.get_json(silent=True))
        if isinstance(parsed, str):
            return jsonify(error="bad_request", message=parsed), 400
        trigger, query, request_id = parsed
        sources = search(query)
        sid = "sg_" + uuid.uuid4().hex[:16]
        headers = {"Accept": "text/event-stream"}
        if request_id:
            headers["X-Request-Id"] = request_id
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        payload = {"model": model, "messages": messages(query, sources),
                   "stream": True, "max_tokens": 512}

        def generate() -> Iterator[str]:
            seq = itertools.count(1)
            public = [{k: v for k, v in s.items() if k != "text"} for s in sources]
            yield _sse(sid, next(seq), "suggestion",
                       {"trigger": trigger, "query": query, "sources": public})
            stop_reason, failed = "stop", False
            try:
                with requests.post(completions_url, json=payload, headers=headers,
                                   stream=True) as upstream:
                    if upstream.status_code != 200:
                        raise UpstreamError(f"upstream_{upstream.status_code}")
                    for line in upstream.iter_lines(decode_unicode=True):
                        if line == "data: [DONE]":
                            break
                        if not line.startswith("data: "):
                            continue
                        for choice in json.loads(line.removeprefix("data: "))["choices"]:
                            if text := (choice.get("delta") or {}).get("content"):
                                yield _sse(sid, next(seq), "delta", {"text": text})
                            stop_reason = choice.get("finish_reason") or stop_reason
            except UpstreamError as error:
                stop_reason, failed = str(error), True
            except (requests.RequestException, ValueError, KeyError):
                stop_reason, failed = "upstream_network", True
            if failed:
                top = (sources or [dict.fromkeys(("id", "title", "url", "snippet"), "")])[0]
                article = {"id": top["id"], "title": top["title"], "url": top["url"],
                           "excerpt": top["snippet"]}
                yield _sse(sid, next(seq), "fallback",
                           {"reason": "upstream_error", "article": article})
            yield _sse(sid, next(seq), "done", {
                "complete": True, "outcome": "fallback" if failed else "completed",
                "stop_reason": stop_reason, "metrics": {}})

        return Response(stream_with_context(generate()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store"})

    return app


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve ``app`` with a thread per connection until interrupted."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, app, threaded=True)
    print(f"peer listening on http://{host}:{server.server_port}", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--kb", type=Path, required=True, help="the panel's knowledge-base file")
    parser.add_argument("--model-url", required=True, help="OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--model", default="mock-assist-1")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    serve(create_app(args.kb, args.model_url, args.model, args.api_key), args.host, args.port)


if __name__ == "__main__":
    main()
