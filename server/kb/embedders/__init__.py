"""Embedders turn passages and queries into vectors. Chosen by ``ASSIST_EMBEDDER``."""

from __future__ import annotations

import httpx

from server.kb.embedders.base import Embedder, Vectors, normalize
from server.kb.embedders.local import WordLlamaEmbedder
from server.settings import Settings

__all__ = ["Embedder", "Vectors", "WordLlamaEmbedder", "build_embedder",
           "normalize"]


def build_embedder(settings: Settings, client: httpx.AsyncClient | None = None
                   ) -> Embedder | None:
    """The embedder the settings select (None: BM25 alone). ``client`` serves queries of
    the ``openai`` embedder; without it only its blocking path works (imports)."""
    if settings.embedder == "none":
        return None
    if settings.embedder == "openai":
        from server.kb.embedders.openai_embeddings import OpenAIEmbedder

        secret = settings.embedding_api_key or settings.openai_api_key
        return OpenAIEmbedder(
            base_url=settings.embedding_base_url or settings.openai_base_url,
            model=settings.embedding_model,
            api_key=secret.get_secret_value() if secret else None,
            dimensions=settings.embedding_dimensions,
            client=client,
        )
    return WordLlamaEmbedder()
