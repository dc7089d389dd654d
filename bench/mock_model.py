"""``python -m bench.mock_model``: the dev-mode mock model server on its own, for benchmarks."""

from __future__ import annotations

import argparse

import uvicorn

from server.devmode.mocks.llm import FAULTS, MockLLMConfig, create_mock_llm_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-second", type=float, default=20.0)
    parser.add_argument("--fault", choices=FAULTS, default=None)
    parser.add_argument("--stall-after-tokens", type=int, default=3)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    config = MockLLMConfig(tokens_per_second=args.tokens_per_second, fault=args.fault,
                           stall_after_tokens=args.stall_after_tokens,
                           first_token_delay_s=args.first_token_delay)
    uvicorn.run(create_mock_llm_app(config), host=args.host, port=args.port,
                log_level="warning", access_log=False, backlog=4096)


if __name__ == "__main__":
    main()
