"""The ``assist-panel`` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from .settings import Settings


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValidationError as exc:
        raise click.ClickException(f"invalid ASSIST_* setting:\n{exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="assist-panel")
def main() -> None:
    """Assist Panel: grounded knowledge-base answers beside Genesys Cloud conversations.

    Settings come from ASSIST_* environment variables (docs/configuration.md).
    """


@main.command()
def serve() -> None:
    """Run the production panel server (configured by ASSIST_* variables)."""
    import uvicorn

    from .app import create_app

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(levelname)s %(name)s %(message)s")
    try:
        app = create_app(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(app, host=settings.host, port=settings.port,
                log_level=settings.log_level, proxy_headers=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the panel server.")
@click.option("--genesys-port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the mock Genesys Cloud and its mock Agent Desktop.")
@click.option("--llm", type=click.Choice(["extractive", "mock"]), default="extractive",
              show_default=True,
              help="extractive: the embedded generator; mock: the openai generator against "
                   "a mock OpenAI-compatible model server.")
@click.option("--llm-port", default=8002, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the mock model server (with --llm mock).")
@click.option("--llm-fault", default=None, metavar="NAME",
              help="Make the mock model misbehave for the whole run (with --llm mock).")
@click.option("--token-lifetime", default=86400, show_default=True,
              type=click.IntRange(60, 172800), metavar="SECONDS",
              help="Life of the mock's access tokens (short ones show silent re-sign-in).")
def dev(host: str, port: int, genesys_port: int, llm: str, llm_port: int,
        llm_fault: str | None, token_lifetime: int) -> None:
    """Run everything locally: the panel, a mock Genesys Cloud with a mock Agent Desktop
    playing scripted conversations, and the sample knowledge base."""
    import asyncio

    from .dev import DevOptions, run_dev

    options = DevOptions(host=host, port=port, genesys_port=genesys_port, llm=llm,
                         llm_port=llm_port, llm_fault=llm_fault,
                         token_lifetime_s=token_lifetime)
    try:
        asyncio.run(run_dev(options, _settings))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("dev-session")
@click.option("--panel", "panel_url", required=True, metavar="URL",
              help="The dev-mode panel server, e.g. http://localhost:8000.")
@click.option("--conversation", default=None, metavar="ID",
              help="A conversation of the mock (default: start a new scripted one).")
def dev_session(panel_url: str, conversation: str | None) -> None:
    """Sign the mock's scripted agent in to a running dev mode and print
    {"session": ..., "conversationId": ...} as one JSON line (dev mode only).

    Send the session as 'Authorization: Bearer <session>' to the panel's /api routes.
    """
    import json

    from .dev_session import DevSessionError, create_dev_session

    try:
        result = create_dev_session(panel_url, conversation)
    except DevSessionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"session": result.session, "conversationId": result.conversation_id}))


@main.group()
def kb() -> None:
    """Manage the knowledge base (ASSIST_KB_PATH, or --db)."""


_DB = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                   help="Knowledge-base file (default: ASSIST_KB_PATH).")


@kb.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_DB
def kb_import(paths: tuple[Path, ...], db: Path | None) -> None:
    """Import markdown, HTML and JSON articles (files or folders)."""
    from .kb_import import ArticleError, find_files, import_files
    from .knowledge import KnowledgeBase

    store = KnowledgeBase(db or _settings().kb_path)
    try:
        files = find_files(list(paths))
    except ArticleError as exc:
        raise click.ClickException(str(exc)) from exc
    with click.progressbar(length=len(files), label="Importing", file=sys.stderr) as bar:
        summary = import_files(store, files, on_file=lambda _path: bar.update(1))
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(
        f"{summary.files} files: {summary.added} added, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {len(summary.errors)} failed; "
        f"{store.count()} articles in {store.path}"
    )
    if summary.errors:
        sys.exit(1)


@kb.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 50))
@_DB
def kb_search(query: tuple[str, ...], limit: int, db: Path | None) -> None:
    """Search the knowledge base as the panel does (BM25), best first."""
    from .knowledge import KnowledgeBase

    path = db or _settings().kb_path
    if not path.exists():
        raise click.ClickException(f"no knowledge base at {path}: run 'assist-panel kb import'")
    hits = KnowledgeBase(path).search(" ".join(query), limit)
    if not hits:
        click.echo("no matching articles")
        return
    for rank, hit in enumerate(hits, start=1):
        click.echo(f"{rank}. {hit.title}  [{hit.id}]  score {hit.score:.2f}")
        if hit.url:
            click.echo(f"   {hit.url}")
        click.echo(f"   {hit.snippet}")
