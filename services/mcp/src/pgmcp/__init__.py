"""pgmcp: a hardened, read-only MCP server for PostgreSQL (`python -m pgmcp`).

The public surface: `create_app` / `create_mcp` (pgmcp.app), `Settings` (pgmcp.config), `Layers` (pgmcp.layers).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
