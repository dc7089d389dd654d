"""Typed, frozen settings built once from ``ASSIST_*`` environment variables.

Nothing here is read at import time: ``Settings()`` (or ``Settings.from_env()``)
is called by the CLI and handed to ``create_app``. Every field is documented in
``docs/configuration.md``; a test keeps the two in step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the panel server. Environment variable = ``ASSIST_`` + field name."""

    model_config = SettingsConfigDict(env_prefix="ASSIST_", frozen=True, extra="ignore")

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    public_url: str = ""
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Knowledge base
    kb_path: Path = Path("assist-panel.db")
    kb_poll_s: float = Field(30.0, gt=0, le=3600)
    retrieval_top_k: int = Field(3, ge=1, le=20)

    # Retrieval: passage vectors and the confidence threshold
    embedder: Literal["wordllama", "openai", "none"] = "wordllama"
    embedding_base_url: str = ""
    embedding_model: str = "text-embedding-3-small"
    embedding_api_key: SecretStr | None = None
    embedding_dimensions: int | None = Field(None, ge=1, le=8192)
    retrieval_dense_weight: float = Field(0.5, ge=0.0, le=1.0)
    relevance_threshold: float = Field(0.35, ge=0.0, le=1.0)

    # Context window
    context_utterances: int = Field(6, ge=1, le=50)
    context_max_chars: int = Field(2000, ge=100, le=50_000)

    # Generation
    generator: Literal["extractive", "openai"] = "extractive"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    model_context_tokens: int = Field(8192, ge=512)
    max_tokens: int = Field(512, ge=1, le=32_768)
    extractive_token_delay_ms: int = Field(15, ge=0, le=1000)
    # The model's streams over HTTP/2, many to a connection, or HTTP/1.1, a connection
    # a stream. auto: HTTP/2 where an https:// model's TLS handshake agrees (ALPN);
    # true: always (h2c on http://), the server must speak it; false: never.
    model_http2: Literal["auto"] | bool = "auto"

    # Streaming limits
    flush_interval_ms: int = Field(100, ge=10, le=1000)
    first_token_timeout_s: float = Field(8.0, gt=0)
    stall_timeout_s: float = Field(5.0, gt=0)
    stream_limit_s: float = Field(15.0, gt=0)
    sse_ping_s: float = Field(15.0, gt=0)
    # After a full pass of the garbage collector, none for this long (0: CPython's own
    # rule alone): each holds every stream (server/web/collector.py).
    gc_full_interval_s: float = Field(60.0, ge=0)
    send_timeout_s: float = Field(10.0, gt=0)
    # Slow clients: a request's headers, then its body, must arrive within these.
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    body_timeout_s: float = Field(10.0, gt=0, le=300)

    # Model service failures
    retry_max_attempts: int = Field(3, ge=1, le=10)
    circuit_failures: int = Field(5, ge=1)
    circuit_reset_s: float = Field(30.0, gt=0)

    # Load and input limits
    rate_limit_per_minute: int = Field(60, ge=0)
    signin_rate_limit_per_minute: int = Field(120, ge=0)
    max_streams: int = Field(1000, ge=1)
    max_body_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_transcript_chars: int = Field(20_000, ge=100)
    shutdown_grace_s: float = Field(10.0, gt=0, le=300)
    # Limits shared by every worker and replica (unset: each process keeps its own)
    redis_url: SecretStr | None = None

    # GET /metrics: open when unset, else only with "Authorization: Bearer <token>"
    metrics_token: SecretStr | None = None

    # Machine clients (POST /v1/stream-assist) and the audit log
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    audit_log: str = "-"

    # Fallback article when retrieval found nothing
    fallback_article_title: str = "Search the knowledge base"
    fallback_article_url: str = ""
    fallback_article_excerpt: str = (
        "No article matched this question. Try different words in the search box."
    )

    # Genesys Cloud
    genesys_regions: Annotated[tuple[str, ...], NoDecode] = ("prod",)
    genesys_login_base: str = ""
    genesys_api_base: str = ""
    oauth_client_id: str = ""
    oauth_grant: Literal["pkce", "implicit"] = "pkce"
    popup_sign_in: bool = False
    extra_frame_ancestors: Annotated[tuple[str, ...], NoDecode] = ()
    genesys_timeout_s: float = Field(10.0, gt=0, le=120)

    # Sessions and sign-in
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(3600, ge=60, le=172_800)
    implicit_session_ttl_s: int = Field(300, ge=60, le=3600)
    state_ttl_s: int = Field(600, ge=30, le=3600)
    allowed_orgs: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("genesys_regions", "extra_frame_ancestors", "allowed_orgs", "api_keys",
                     mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        # Env vars arrive as "a,b" or as a JSON list, '["a", "b"]' (NoDecode: not
        # decoded before this). Blank items are dropped either way.
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text.startswith("["):
            return tuple(part.strip() for part in text.split(",") if part.strip())
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            # Says what is wrong, never the value (it may hold API keys).
            raise ValueError("a value starting with [ must be a JSON list of strings")
        return tuple(item.strip() for item in items if item.strip())

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from the environment, with explicit overrides winning."""
        return cls(**overrides)  # type: ignore[arg-type]


def describe_errors(exc: ValidationError) -> str:
    """One line a refused setting, naming its variable and what is wrong, never its
    value: pydantic's own text quotes the input (``input_value='["sk-..."]'``), and
    settings hold keys and secrets."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        name, *rest = error["loc"] or ("?",)
        where = f"ASSIST_{str(name).upper()}" + "".join(f"[{part}]" for part in rest)
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)
