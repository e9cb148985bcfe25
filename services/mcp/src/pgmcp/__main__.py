"""The one entry point: `python -m pgmcp` (HTTP), `python -m pgmcp --stdio`, `python -m pgmcp healthcheck`,
`python -m pgmcp config-table` (prints the README's configuration table).

Exit status: 0 after a clean shutdown, 2 for invalid configuration, 3 when startup is refused (role audit),
4 when the database cannot be reached at startup (`pgmcp.errors.EXIT_STATUS`).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence

from pgmcp import healthcheck
from pgmcp.config import Settings, render_env_table, unknown_variables
from pgmcp.errors import ConfigError, PgMcpError, exit_status

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
        choices=["serve", "healthcheck", "config-table"],
        help="serve (default), healthcheck (exit 0 iff /healthz answers), config-table (print the README table)",
    )
    parser.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout instead of HTTP")
    return parser


async def serve_http(settings: Settings) -> None:
    import uvicorn

    from pgmcp.app import create_app
    from pgmcp.service import Service

    app = create_app(settings)
    service: Service = app.state.service
    await service.database.open()
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
        logger.info("serving MCP on http://%s:%s/mcp", settings.bind_host, settings.port)
        await uvicorn.Server(config).serve()
    finally:
        await service.database.close()


async def serve_stdio(settings: Settings) -> None:
    from pgmcp.app import build_mcp
    from pgmcp.layers import ALL_LAYERS
    from pgmcp.service import Service

    service = Service.build(settings, ALL_LAYERS, principal="stdio")
    mcp = build_mcp(service)
    await service.database.open()
    try:
        await mcp.run_stdio_async()
    finally:
        await service.database.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config-table":
        sys.stdout.write(render_env_table())
        return 0
    if args.command == "healthcheck":
        return healthcheck.check(os.environ)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"pgmcp: {exc}", file=sys.stderr)
        return exit_status(exc)
    import anyio

    from pgmcp import logs

    # stdout carries the protocol in stdio mode: logs go to stderr there.
    logs.configure(settings.log_level, sys.stderr if args.stdio else sys.stdout)
    for name in unknown_variables(os.environ):
        logger.warning("%s is not a setting of this server (ignored): check its spelling", name)
    try:
        # uvloop (and httptools, which uvicorn picks by itself) when installed: about 15% off each call's latency
        uvloop = importlib.util.find_spec("uvloop") is not None
        anyio.run(serve_stdio if args.stdio else serve_http, settings, backend_options={"use_uvloop": uvloop})
    except PgMcpError as exc:
        logger.error("%s", exc)
        print(f"pgmcp: {exc}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        return 0
    return 0


__all__ = ["main", "serve_http", "serve_stdio"]

if __name__ == "__main__":
    sys.exit(main())
