"""``python -m bench.mock_model``: the dev-mode mock model server on its own, for benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvicorn
import uvloop
from starlette.applications import Starlette

from server.devmode.mocks.llm import FAULTS, MockLLMConfig, create_mock_llm_app

from . import h2_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-second", type=float, default=20.0)
    parser.add_argument("--fault", choices=FAULTS, default=None)
    parser.add_argument("--stall-after-tokens", type=int, default=3)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--context-tokens", type=int, default=MockLLMConfig.context_tokens,
                        help="the model's context window (prompt and max_tokens)")
    parser.add_argument("--max-output-tokens", type=int,
                        default=MockLLMConfig.max_output_tokens,
                        help="the most max_tokens a request may ask for")
    parser.add_argument("--http2", action="store_true",
                        help="serve HTTP/2 only (bench/h2_server.py: h2c with prior knowledge, "
                             "or with --certfile TLS offering h2; up to 100 streams a "
                             "connection); without it uvicorn serves HTTP/1.1")
    parser.add_argument("--certfile", help="serve TLS with this certificate chain")
    parser.add_argument("--keyfile", help="the certificate's private key")
    args = parser.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    config = MockLLMConfig(tokens_per_second=args.tokens_per_second, fault=args.fault,
                           stall_after_tokens=args.stall_after_tokens,
                           first_token_delay_s=args.first_token_delay,
                           context_tokens=args.context_tokens,
                           max_output_tokens=args.max_output_tokens)
    app = create_mock_llm_app(config)
    if args.http2:
        # On uvloop, as uvicorn runs: asyncio's own TLS is Python code.
        uvloop.run(_http2(app, args.host, args.port, args.certfile, args.keyfile))
        return
    uvicorn.run(app, host=args.host, port=args.port, ssl_certfile=args.certfile,
                ssl_keyfile=args.keyfile, log_level="warning", access_log=False,
                backlog=4096)


async def _http2(app: Starlette, host: str, port: int, certfile: str | None,
                 keyfile: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    context = h2_server.tls_context(certfile, keyfile) if certfile and keyfile else None
    await h2_server.serve(app, host, port, stop, context=context)


if __name__ == "__main__":
    main()
