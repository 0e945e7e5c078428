"""``callable serve | migrate | demo | worker``.

The server, the database and the demo are imported inside each command, so ``migrate``
loads no web server and no command's ``--help`` loads either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from callable_agents.cli.common import cli_settings, run_async, run_serving

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from callable_agents.core.config import Settings
    from callable_agents.core.runtime import Runtime


def serve_app(
    settings: Settings,
    on_started: Callable[[], None] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    home_links: Sequence[tuple[str, str]] = (),
) -> None:
    """Run the server until interrupted; ``on_started`` runs once it is listening."""
    import uvicorn

    from callable_agents.core.observability.logs import configure_logging
    from callable_agents.server import create_app

    configure_logging(settings)

    if not settings.auto_migrate:
        # Said here in one line: raised in the server's lifespan, it comes wrapped in
        # uvicorn's tracebacks.
        run_async(_require_migrated(settings))
    app = create_app(settings, extra_routes=extra_routes, home_links=home_links)
    from uvicorn.config import LOGGING_CONFIG

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # JSON logs: uvicorn's records go through the root logger's JSON handler.
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        lifespan="on",
        # Open chat event streams would otherwise hold a shutdown for minutes.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if server.started and on_started is not None:
            on_started()
        await serving
        if not server.started:
            raise SystemExit(1)

    run_serving(serve())


async def _require_migrated(settings: Settings) -> None:
    from callable_agents.core.db import Database

    db = Database(settings.resolved_database_url)
    try:
        await db.require_migrated()
    finally:
        await db.dispose()


@click.command("serve")
@click.option("--host", default=None, help="Interface to bind (default CALLABLE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default CALLABLE_PORT or 8000).")
@click.option("--migrate", "auto_migrate", is_flag=True, default=None, help="Apply pending migrations first.")
def serve(host: str | None, port: int | None, auto_migrate: bool | None) -> None:
    """Run the server: channel webhooks, widget, admin API, job worker."""
    overrides = {k: v for k, v in {"host": host, "port": port, "auto_migrate": auto_migrate}.items() if v is not None}
    settings = cli_settings(**overrides)
    owner_links = run_async(_owner_setup_links(settings))

    def announce() -> None:
        click.echo(f"Callable Agents listening on {settings.base_url}")
        click.echo(f"  {'Dashboard:':<18} {settings.base_url}/dashboard")
        _echo_owner_links(settings, owner_links)

    serve_app(settings, announce)


async def _owner_setup_links(settings: Settings) -> list[tuple[str, str]]:
    """A one-time link for each workspace without an owner (none if the database is not
    migrated yet: ``serve`` says so itself, or migrates first with ``--migrate``)."""
    from callable_agents.core.bootstrap import running
    from callable_agents.core.db import Database
    from callable_agents.dashboard.account import owner_setup_links

    db = Database(settings.resolved_database_url)
    try:
        migrated = await db.is_migrated()
    finally:
        await db.dispose()
    if not migrated and not settings.auto_migrate:
        return []
    async with running(settings, migrate=settings.auto_migrate) as runtime:
        return await owner_setup_links(runtime)


def _echo_owner_links(settings: Settings, links: Sequence[tuple[str, str]]) -> None:
    for workspace_name, path in links:
        click.echo(f"  {'Create the owner:':<18} {settings.base_url}{path}  (workspace {workspace_name}; one-time link)")


@click.command("migrate")
def migrate() -> None:
    """Bring the database schema up to date."""
    from callable_agents.core.db import Database

    settings = cli_settings()

    async def go() -> None:
        db = Database(settings.resolved_database_url)
        try:
            before = await db.current_revision()
            await db.migrate()
            after = await db.current_revision()
        finally:
            await db.dispose()
        click.echo(f"database migrated: {before or 'empty'} -> {after}")

    run_async(go())


async def setup_demo_workspace(runtime: Runtime) -> list[tuple[str, str]]:
    """Apply the packaged demo file (idempotent) and return (label, path) pairs to show."""
    from callable_agents.demo import apply_demo

    return await apply_demo(runtime)


@click.command("demo")
@click.option("--port", type=int, default=None, help="Port (default CALLABLE_PORT or 8000).")
def demo(port: int | None) -> None:
    """Set up the demo workspace on SQLite with the offline model, and serve it."""
    from callable_agents.core.bootstrap import running

    # The demo's order-status tool calls the demo API on this same server (loopback).
    settings = cli_settings(auto_migrate=True, allow_private_urls=True, **({"port": port} if port else {}))

    async def prepare() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        from callable_agents.dashboard.account import owner_setup_links

        async with running(settings, migrate=True) as runtime:
            return await setup_demo_workspace(runtime), await owner_setup_links(runtime)

    links, owner_links = run_async(prepare())

    def announce() -> None:
        click.echo("")
        click.echo("Callable Agents demo is running (SQLite, offline model: no API key needed).")
        click.echo(f"  {'Open:':<18} {settings.base_url}/")
        click.echo(f"  {'Dashboard:':<18} {settings.base_url}/dashboard")
        _echo_owner_links(settings, owner_links)
        for label, path in links:
            click.echo(f"  {label + ':':<18} {settings.base_url}{path}")
        click.echo(f"  {'Health:':<18} {settings.base_url}/readyz")
        click.echo("Press Ctrl+C to stop.")

    from callable_agents.demo import demo_routes

    serve_app(settings, announce, extra_routes=demo_routes(), home_links=links)


COMMANDS = [serve, migrate, demo]


@click.command("worker")
@click.option("--concurrency", type=int, default=8, show_default=True, help="Jobs run at once (different conversations).")
def worker(concurrency: int) -> None:
    """Run a job worker without the web server (several may share one PostgreSQL database)."""
    import signal

    from callable_agents.core.bootstrap import running
    from callable_agents.core.jobs import STOP_GRACE_SECONDS, Worker
    from callable_agents.core.observability.endpoint import start_metrics_server
    from callable_agents.core.observability.logs import configure_logging
    from callable_agents.core.observability.tracing import configure_tracing_from_env
    from callable_agents.server import keep_startup_out_of_gc, prepare_for_turns, start_background_work

    settings = cli_settings(run_worker=False)
    configure_logging(settings)
    configure_tracing_from_env()

    async def go() -> None:
        async with running(settings) as runtime:
            start_background_work(runtime)  # registers the job handlers (run_worker is off here)
            metrics_server = await start_metrics_server(runtime)
            # Before the first claim: a process that fails to get ready must not hold jobs
            # until their leases expire.
            await prepare_for_turns(runtime)
            job_worker = Worker(runtime, concurrency=concurrency)
            runtime.services.worker = job_worker
            task = asyncio.create_task(job_worker.run())
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, task.cancel)
            keep_startup_out_of_gc()
            click.echo(f"worker {job_worker.worker_id} running", err=True)
            try:
                await task
            except asyncio.CancelledError:
                pass
            finally:
                if metrics_server is not None:
                    metrics_server.close()
                await job_worker.stop(grace_seconds=STOP_GRACE_SECONDS)

    run_serving(go())


COMMANDS.append(worker)
