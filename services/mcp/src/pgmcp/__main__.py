"""The one entry point: `python -m pgmcp` (HTTP), `python -m pgmcp --stdio`, `python -m pgmcp healthcheck`,
`python -m pgmcp settings [--markdown | --compose | --update FILE...]` (the settings and their generated blocks),
`python -m pgmcp reader-role [--force] [--schemas A,B]` (create the reader and backup roles on your database:
`pgmcp.reader_role`), `python -m pgmcp api-key create|list|revoke` (the key file: `pgmcp.key_admin`).

Exit status (`pgmcp.errors.ExitCode`, the same table as pgbackup's, docs/conventions.md): 0 after a clean
shutdown, 2 usage, 3 invalid configuration, 4 startup refused (role audit), 5 database unreachable at startup,
70 a bug. With `MCP_WORKERS` above 1 the process is the supervisor of that many workers (`pgmcp.workers`).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgmcp import generated, healthcheck, logs
from pgmcp.config import VARIABLES, Settings, default_values
from pgmcp.errors import ConfigError, ExitCode, PgMcpError, exit_status
from pgmcp.workers import (
    Shared,
    Supervisor,
    WorkerSlot,
    cleanup_metrics_directory,
    listen,
    pool_share,
    prepare_metrics_directory,
    reserve,
    worker_count,
)

if TYPE_CHECKING:
    from pgmcp.service import Service

# The server's modules (the MCP SDK, uvicorn, psycopg) are imported only to serve: the health check runs every
# few seconds in the container and must stay cheap.

logger = logging.getLogger("pgmcp")

GRACEFUL_SHUTDOWN_S = 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pgmcp", description="Read-only MCP server for PostgreSQL")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "healthcheck", "settings", "config-table", "reader-role"],
        help="serve (default), healthcheck (exit 0 iff /healthz answers), settings (every MCP_* setting; "
        "config-table is its old name for --markdown), reader-role (create the roles on your database; "
        "`reader-role --help` for its options)",
    )
    parser.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout instead of HTTP")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--markdown", action="store_true", help="settings: print the README table")
    shown.add_argument("--compose", action="store_true", help="settings: print the Compose pass-through list")
    shown.add_argument(
        "--update", nargs="+", type=Path, metavar="FILE", help="settings: regenerate the blocks between the markers"
    )
    return parser


def print_settings(args: argparse.Namespace) -> int:
    """`settings`: every setting with its default, one of the generated blocks, or rewrite them in files."""
    if args.update:
        for path in args.update:
            try:
                path.write_text(generated.update(path.read_text()))
            except (OSError, ValueError) as exc:
                print(f"pgmcp settings: unable to update {path}: {exc}", file=sys.stderr)
                return ExitCode.CONFIG
            print(f"updated the generated blocks in {path}")
    elif args.markdown:
        sys.stdout.write(generated.render_env_table())
    elif args.compose:
        sys.stdout.write(generated.render_compose_environment())
    else:
        defaults = default_values()
        for spec in VARIABLES:
            print(f"{spec.env}={spec.kind.show(defaults[spec.field])}  # {spec.help}")
    return ExitCode.OK


async def serve_http(settings: Settings, worker: WorkerSlot | None = None, sock: socket.socket | None = None) -> None:
    """Serve HTTP: the whole server, or one of its workers on its own socket of the port's group (`pgmcp.workers`)."""
    import uvicorn

    from pgmcp.app import create_app

    app = create_app(settings, worker=worker)
    service: Service = app.state.service
    await service.open()
    # Everything built so far lives as long as the process: out of the collector's sight, so that its full
    # collections stop walking the imported modules and the SDK's models on every call's garbage.
    gc.freeze()
    try:
        config = uvicorn.Config(
            app,
            host=settings.bind_host,
            port=settings.port,
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        if worker is None:
            logger.info("serving MCP on http://%s:%s/mcp", settings.bind_host, settings.port)
        if worker is not None:
            worker.shared.set_serving(worker.index, True)
        try:
            await uvicorn.Server(config).serve(sockets=[sock] if sock is not None else None)
        finally:
            if worker is not None:
                worker.shared.set_serving(worker.index, False)
    finally:
        await service.close()


async def check_startup(settings: Settings, workers: int) -> None:
    """The startup checks of `Service.open` (probe, role audit, the pool against the connection limits), once for
    all the workers, before anything listens."""
    from pgmcp.layers import ALL_LAYERS
    from pgmcp.service import Service

    service = Service.build(settings, ALL_LAYERS, principal="startup", startup_check=True)
    await service.open()
    await service.close()
    logger.info(
        "startup checks passed: serving MCP on http://%s:%s/mcp with %d workers, each with up to %d of the %d "
        "pooled connections",
        settings.bind_host, settings.port, workers, pool_share(settings.pool_max_size, workers, 0),
        settings.pool_max_size,
    )  # fmt: skip


def serve_workers(settings: Settings, workers: int, run: Callable[..., None]) -> int:
    """The supervisor of `workers` processes (`pgmcp.workers`); its exit status."""
    try:
        directory = prepare_metrics_directory()
    except PgMcpError as exc:
        print(f"pgmcp: {exc}", file=sys.stderr)
        return exit_status(exc)
    try:
        try:
            run(check_startup, settings, workers)
        except PgMcpError as exc:
            logger.error("%s", exc)
            print(f"pgmcp: {exc}", file=sys.stderr)
            return exit_status(exc)
        from prometheus_client import multiprocess

        reservation = reserve(settings.bind_host, settings.port)
        shared = Shared(workers)

        def run_worker(slot: WorkerSlot) -> int:
            reservation.close()  # the supervisor's; the worker listens on a socket of its own
            logs.configure(settings.log_level, sys.stdout, worker=slot.index)
            sock = listen(settings.bind_host, settings.port)
            return _run_server(lambda: run(serve_http, settings, slot, sock))

        return Supervisor(shared, run_worker, multiprocess.mark_process_dead).run()
    finally:
        cleanup_metrics_directory(directory)


def _run_server(serve: Callable[[], None]) -> int:
    """Run `serve` and turn what escapes it into the exit status."""
    try:
        serve()
    except PgMcpError as exc:
        logger.error("%s", exc)
        print(f"pgmcp: {exc}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        return ExitCode.OK
    except Exception:
        logger.exception("the server failed with an unexpected error (a bug: please report it with this log)")
        return ExitCode.INTERNAL
    return ExitCode.OK


async def serve_stdio(settings: Settings) -> None:
    from pgmcp.app import build_mcp
    from pgmcp.layers import ALL_LAYERS
    from pgmcp.service import Service

    service = Service.build(settings, ALL_LAYERS, principal="stdio")
    mcp = build_mcp(service)
    await service.open()
    try:
        await mcp.run_stdio_async()
    finally:
        await service.close()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["reader-role"]:
        from pgmcp import reader_role

        return reader_role.main(arguments[1:], os.environ)
    if arguments[:1] == ["api-key"]:
        from pgmcp import key_admin

        return key_admin.main(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.command == "config-table":
        print("pgmcp: config-table is deprecated: write `python -m pgmcp settings --markdown`", file=sys.stderr)
        args.command, args.markdown = "settings", True
    if args.command != "settings" and (args.markdown or args.compose or args.update):
        parser.error("--markdown, --compose and --update go with the settings command")
    if args.command == "settings":
        return print_settings(args)
    if args.command == "healthcheck":
        return healthcheck.check(os.environ)
    # stdout carries the protocol in stdio mode: logs go to stderr there. INFO until the settings say otherwise,
    # so that a deprecated name's warning is logged.
    stream = sys.stderr if args.stdio else sys.stdout
    logs.configure("INFO", stream)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"pgmcp: {exc}", file=sys.stderr)
        return exit_status(exc)
    import anyio

    logs.configure(settings.log_level, stream)
    # uvloop (and httptools, which uvicorn picks by itself) when installed: about 15% off each call's latency
    uvloop = importlib.util.find_spec("uvloop") is not None

    def run(function: Callable[..., Awaitable[None]], *arguments: Any) -> None:
        anyio.run(function, *arguments, backend_options={"use_uvloop": uvloop})

    if args.stdio:
        return _run_server(lambda: run(serve_stdio, settings))
    workers = worker_count(settings)
    if workers > 1:
        return serve_workers(settings, workers, run)
    return _run_server(lambda: run(serve_http, settings))


__all__ = ["main", "serve_http", "serve_stdio"]

if __name__ == "__main__":
    sys.exit(main())
