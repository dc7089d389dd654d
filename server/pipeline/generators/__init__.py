"""Generators turn a query and its sources into streamed text. Chosen by ``ASSIST_GENERATOR``."""

from __future__ import annotations

import httpx

from server.pipeline.generators.base import Chunk, GenerationRequest, Generator
from server.pipeline.generators.extractive import ExtractiveGenerator
from server.pipeline.generators.openai_chat import OpenAIChatGenerator
from server.pipeline.generators.retrying import RetryingGenerator
from server.settings import Settings
from server.web.upstream_body import ModelStreams

__all__ = ["Chunk", "ExtractiveGenerator", "GenerationRequest", "Generator",
           "OpenAIChatGenerator", "RetryingGenerator", "build_generator"]


def build_generator(settings: Settings, client: httpx.AsyncClient,
                    streams: ModelStreams | None = None) -> Generator:
    """The generator the settings select; ``streams`` carries the model's streams when
    given (else ``client`` does)."""
    if settings.generator == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIChatGenerator(
            client,
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=key,
            context_tokens=settings.model_context_tokens,
            streams=streams,
        )
    return ExtractiveGenerator(
        token_delay_s=settings.extractive_token_delay_ms / 1000,
    )
