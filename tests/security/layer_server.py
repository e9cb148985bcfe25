"""The MCP server over HTTP in a process of its own, with only some safety layers on: what the memory tests of
the adversarial suite measure, so that a peak resident set size is the server's alone, not the test's.

    python -m tests.security.layer_server --layers cap[,tmo...]

Settings come from the environment exactly as for `python -m pgmcp` (devtools.mcp_server starts it). Test-only:
production code has no way to turn a layer off (pgmcp.layers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from pgmcp.app import create_app
from pgmcp.config import Settings
from pgmcp.layers import Layers


async def serve(settings: Settings, layers: Layers) -> None:
    import uvicorn

    app = create_app(settings, layers=layers)
    service = app.state.service
    await service.open()
    try:
        config = uvicorn.Config(
            app, host=settings.bind_host, port=settings.port, lifespan="on", log_config=None, access_log=False
        )
        await uvicorn.Server(config).serve()
    finally:
        await service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.security.layer_server")
    parser.add_argument("--layers", required=True, help="the layers left on, comma-separated (cap,tmo,...)")
    args = parser.parse_args(argv)
    layers = Layers.only(*args.layers.split(","))
    asyncio.run(serve(Settings.from_env(os.environ), layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
