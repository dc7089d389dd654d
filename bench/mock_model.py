"""``python -m bench.mock_model``: the dev-mode mock model server on its own, for benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn
import uvloop
from starlette.applications import Starlette

from server.devmode.http2 import Http2Server
from server.devmode.mocks.llm import FAULTS, MockLLMConfig, create_mock_llm_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-second", type=float, default=20.0)
    parser.add_argument("--fault", choices=FAULTS, default=None)
    parser.add_argument("--stall-after-tokens", type=int, default=3)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--http2", action="store_true",
                        help="serve with hypercorn: HTTP/2 (h2c with prior knowledge, up to "
                             "100 streams a connection) and HTTP/1.1 on the same port")
    parser.add_argument("--certfile", help="with --http2: serve TLS with this certificate "
                        "chain, offering h2 and http/1.1 (ALPN)")
    parser.add_argument("--keyfile", help="the certificate's private key")
    args = parser.parse_args(argv)
    if (args.certfile or args.keyfile) and not (args.http2 and args.certfile and args.keyfile):
        parser.error("--certfile and --keyfile go together, with --http2")
    config = MockLLMConfig(tokens_per_second=args.tokens_per_second, fault=args.fault,
                           stall_after_tokens=args.stall_after_tokens,
                           first_token_delay_s=args.first_token_delay)
    app = create_mock_llm_app(config)
    if args.http2:
        # On uvloop, as uvicorn runs: asyncio's own TLS is Python code, and with it the
        # mock spent its core sending 17,000 tokens/s to 1,000 streams over HTTP/2.
        uvloop.run(_hypercorn(app, args.host, args.port, args.certfile, args.keyfile))
        return
    uvicorn.run(app, host=args.host, port=args.port,
                log_level="warning", access_log=False, backlog=4096)


async def _hypercorn(app: Starlette, host: str, port: int, certfile: str | None,
                     keyfile: str | None) -> None:
    server = Http2Server(app, f"{host}:{port}")
    if certfile:
        server.config.certfile, server.config.keyfile = certfile, keyfile
        server.config.alpn_protocols = ["h2", "http/1.1"]
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, setattr, server, "should_exit", True)
    await server.serve()


if __name__ == "__main__":
    main()
