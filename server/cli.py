"""The ``assist-panel`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from server.errors import CommandError
from server.settings import Settings, describe_errors

if TYPE_CHECKING:
    from server.kb.store import KnowledgeBase


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValidationError as exc:
        raise click.ClickException(f"invalid ASSIST_* setting:\n{describe_errors(exc)}"
                                   ) from None


class _Commands(click.Group):
    """The command group: a ``CommandError`` from any command (admin, kb, dev) ends it
    with its message and its exit code, here and nowhere else."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandError as exc:
            # As click shows its own errors ("Error: ..." on standard error).
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="assist-panel")
def main() -> None:
    """Assist Panel: grounded knowledge-base answers beside Genesys Cloud conversations.

    Settings come from ASSIST_* environment variables (docs/configuration.md).
    """


@main.command()
@click.option("--workers", type=click.IntRange(1, 64), default=None, metavar="N",
              help="Worker processes sharing the port (default ASSIST_WORKERS, or 1).")
def serve(workers: int | None) -> None:
    """Run the production panel server (configured by ASSIST_* variables).

    On SIGTERM it ends every open stream with a final event, then exits
    (within ASSIST_SHUTDOWN_GRACE_S). With several workers, each one does.
    """
    from server.web.native_pools import one_thread_each

    one_thread_each()  # before numpy's first import, below

    from server.app import check_knowledge_base, check_startup, create_app
    from server.logs import configure_logging
    from server.web.open_files import lift_soft_limit
    from server.web.serving import GracefulServer, uvicorn_config
    from server.web.workers import Supervisor

    settings = _settings() if workers is None else _settings(workers=workers)
    configure_logging(settings.log_level)
    lift_soft_limit()  # before the workers start: they inherit it
    try:
        check_startup(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    # An unreadable store ends the command here, with one line, not in every worker.
    check_knowledge_base(settings)
    if settings.workers > 1:
        try:
            code = Supervisor(settings, settings.workers).run()
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        sys.exit(code)
    try:
        app = create_app(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    config = uvicorn_config(app, settings, host=settings.host, port=settings.port,
                            log_config=None, log_level=settings.log_level, proxy_headers=True,
                            timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 1)
    GracefulServer(config, app.state.streams).run()


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
@click.option("--playback-speed", default=1.0, show_default=True,
              type=click.FloatRange(0.1, 20), metavar="FACTOR",
              help="Play the scripted conversations this many times faster (2: twice as "
                   "fast; the automated tests use it).")
def dev(host: str, port: int, genesys_port: int, llm: str, llm_port: int,
        llm_fault: str | None, token_lifetime: int, playback_speed: float) -> None:
    """Run everything locally: the panel, a mock Genesys Cloud with a mock Agent Desktop
    playing scripted conversations, and the sample knowledge base."""
    import asyncio

    from server.web.native_pools import one_thread_each

    one_thread_each()  # before numpy's first import, below

    from server.devmode.run import DevOptions, run_dev

    options = DevOptions(host=host, port=port, genesys_port=genesys_port, llm=llm,
                         llm_port=llm_port, llm_fault=llm_fault,
                         token_lifetime_s=token_lifetime, playback_speed=playback_speed)
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

    from server.devmode.session import create_dev_session

    result = create_dev_session(panel_url, conversation)
    click.echo(json.dumps({"session": result.session, "conversationId": result.conversation_id}))


@main.group()
def kb() -> None:
    """Manage the knowledge base (ASSIST_KB_PATH, or --db)."""


_DB = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                   help="Knowledge-base file (default: ASSIST_KB_PATH).")


def _open_store(db: Path | None) -> KnowledgeBase:
    """The knowledge base with the configured embedder, its index brought up to date
    (re-cut and re-embedded, with a progress bar, when another version or model made it).
    """
    from server.errors import EmbeddingError
    from server.kb.embedders import build_embedder
    from server.kb.store import KnowledgeBase

    settings = _settings()
    store = KnowledgeBase(db or settings.kb_path, build_embedder(settings))
    if not store.needs_reindex():
        store.reindex()  # records what the index is made with, even on an empty store
    else:
        label = f"Indexing for {store.embedder.name if store.embedder else 'BM25'}"
        try:
            with click.progressbar(length=store.count(), label=label, file=sys.stderr) as bar:
                store.reindex(on_progress=bar.update)
        except EmbeddingError as exc:
            raise click.ClickException(f"embedding failed: {exc}") from exc
    return store


@kb.command("publish")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_DB
@click.option("--keep", type=click.IntRange(2, 100), default=3, show_default=True,
              help="Snapshots kept in DIRECTORY (the newest: the current one and the one "
                   "replicas serve until they take it up, at least).")
def kb_publish(directory: Path, db: Path | None, keep: int) -> None:
    """Publish the store as the current snapshot of DIRECTORY, which every replica whose
    ASSIST_KB_PATH is DIRECTORY takes up within ASSIST_KB_POLL_S (docs/deploy.md)."""
    from server.kb.snapshots import publish

    store = _open_store(db)  # brought up to date with this embedder before it is copied
    store.close()
    name = publish(store.path, directory, keep=keep)
    click.echo(f"published {name} to {directory}")


@kb.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_DB
def kb_import(paths: tuple[Path, ...], db: Path | None) -> None:
    """Import markdown, HTML and JSON articles (files or folders)."""
    from server.errors import ArticleError, EmbeddingError
    from server.kb.importer import find_files, import_files

    try:
        files = find_files(list(paths))
    except ArticleError as exc:
        raise click.ClickException(str(exc)) from exc
    store = _open_store(db)
    # Each file's passages are embedded as it is stored: the bar covers both.
    label = "Importing and embedding" if store.embedder else "Importing"
    done: list[Path] = []

    def imported(path: Path) -> None:
        done.append(path)
        bar.update(1)

    try:
        with click.progressbar(length=len(files), label=label, file=sys.stderr) as bar:
            summary = import_files(store, files, on_file=imported)
    except EmbeddingError as exc:
        raise click.ClickException(
            f"embedding failed: {exc}\nThe import stopped at {files[len(done)]} "
            f"({len(done)} of {len(files)} files done, kept); run it again to finish "
            "(unchanged articles are not embedded again).") from exc
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
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 50),
              help="How many articles to show, best first.")
@click.option("--explain", is_flag=True,
              help="Show each article's best passage and its BM25 and vector scores.")
@_DB
def kb_search(query: tuple[str, ...], limit: int, explain: bool, db: Path | None) -> None:
    """Search the knowledge base as the panel does (BM25 and vectors fused), best first."""
    from server.app import tuning_from
    from server.pipeline.context import SearchQuery
    from server.pipeline.retrieval import HybridSearch

    path = db or _settings().kb_path
    if not path.exists():
        raise click.ClickException(f"no knowledge base at {path}: run 'assist-panel kb import'")
    search = HybridSearch(_open_store(path), tuning_from(_settings()))
    wanted = SearchQuery.of(" ".join(query))
    found = search.search(wanted, limit, search.embed(wanted))
    if not found.sources:
        click.echo("no matching articles")
        return
    if not found.confident:
        click.echo("no confident answer: the nearest articles follow")
    for rank, source in enumerate(found.sources, start=1):
        click.echo(f"{rank}. {source.title}  [{source.id}]  score {source.score:.2f}")
        if source.url:
            click.echo(f"   {source.url}")
        if explain:
            click.echo(f"   bm25 {source.lexical:.2f}  cosine {source.dense:.3f}")
            for line in source.passages[0].splitlines():
                if line.strip():
                    click.echo(f"   | {line}")
        else:
            click.echo(f"   {source.snippet}")


def _link_template(_ctx: click.Context, _param: click.Parameter,
                   value: str | None) -> str | None:
    """Check ``--link-template`` as the command line is read: a bad one is a usage error,
    before the store is opened or anything is called."""
    from server.errors import SyncError
    from server.kb.sync import check_link_template

    if value is not None:
        try:
            check_link_template(value)
        except SyncError as exc:
            raise click.BadParameter(str(exc).removeprefix("--link-template ")) from None
    return value


@kb.command("sync", short_help="Sync a Genesys Knowledge base in, incrementally.")
@click.option("--knowledge-base", "knowledge_base", required=True, metavar="ID",
              help="Id of the Genesys Knowledge base to copy (Admin > Knowledge).")
@click.option("--region", default=None, metavar="REGION",
              help="The org's Genesys Cloud region: us-east-1, eu-west-1... (or its domain, "
                   "or gcTargetEnv). Needed unless --api-base is given.")
@click.option("--api-base", default=None, metavar="URL",
              help="Dev mode only: call the mock Genesys Cloud at this URL (e.g. "
                   "http://localhost:8001) instead of a region.")
@_DB
@click.option("--page-size", default=200, show_default=True, type=click.IntRange(1, 200),
              help="Documents per listing request.")
@click.option("--link-template", default=None, metavar="URL", callback=_link_template,
              help="Link of documents without an external URL, e.g. "
                   "'https://help.example.com/kb/{documentId}' (fields: {documentId}, "
                   "{knowledgeBaseId}).")
@click.option("--allow-remove-all", is_flag=True,
              help="Let the sync remove every article it synced before when Genesys lists "
                   "nothing it can index (without it such a run removes nothing and fails).")
def kb_sync(knowledge_base: str, region: str | None, api_base: str | None, db: Path | None,
            page_size: int, link_template: str | None, allow_remove_all: bool) -> None:
    """Copy the published, visible documents of a Genesys Knowledge base into the
    knowledge base. Incremental: only changed documents are fetched, and documents
    deleted, unpublished or hidden in Genesys are removed. Safe to run on a schedule
    and to interrupt (docs/knowledge-sync.md).

    Signs in as the Client Credentials OAuth client in ASSIST_ADMIN_CLIENT_ID and
    ASSIST_ADMIN_CLIENT_SECRET; its role needs knowledge:knowledgebase:view and
    knowledge:document:view.
    """
    import asyncio
    from contextlib import ExitStack

    from server.admin.client import AdminCredentials, PlatformHosts
    from server.kb.sync import DocumentResult, KnowledgeBaseInfo, run_sync

    if not region and not api_base:
        raise click.UsageError(
            "give the org's --region (e.g. us-east-1), or --api-base for dev mode's mock")
    PlatformHosts.resolve(region or "", api_base)  # a bad region or URL: before the store
    credentials = AdminCredentials.from_env()
    if credentials is None:
        raise click.ClickException(
            "set ASSIST_ADMIN_CLIENT_ID and ASSIST_ADMIN_CLIENT_SECRET to a Client Credentials "
            "OAuth client of the org (docs/knowledge-sync.md)")
    store = _open_store(db)
    with ExitStack() as stack:
        bars: list[Any] = []

        def started(info: KnowledgeBaseInfo) -> None:
            bars.append(stack.enter_context(click.progressbar(
                length=info.article_count, label=f"Syncing {info.name}", file=sys.stderr)))

        def advanced(_result: DocumentResult) -> None:
            for bar in bars:
                bar.update(1)

        try:
            summary = asyncio.run(run_sync(
                credentials, store, knowledge_base, region=region or "", api_base=api_base,
                page_size=page_size, link_template=link_template, on_start=started,
                on_document=advanced, on_retry=lambda message: click.echo(message, err=True),
                allow_remove_all=allow_remove_all))
        except KeyboardInterrupt:
            stack.close()
            click.echo("interrupted: what was synced is kept and nothing was removed; "
                       "run it again to finish", err=True)
            sys.exit(130)
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    skipped = f", {summary.skipped} skipped" if summary.skipped else ""
    click.echo(
        f"{summary.documents} documents: {summary.added} added, {summary.updated} updated, "
        f"{summary.removed} removed, {summary.unchanged} unchanged{skipped}; "
        f"{store.count()} articles in {store.path}"
    )


def _register_admin_commands() -> None:
    from server.admin.cli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_admin_commands()
