"""One `query` tool call to the MCP server it runs beside (inside the mcp container: `python -c`), with the API
key read from its standard input: exit 0 when the call answers rows, else 1 with why. Standard library only,
and only the protocol every version speaks, so that make upgrade and make rollback check any version with it.
"""

import json
import sys
import urllib.error
import urllib.request

PROTOCOL = "2026-07-28"
SQL = "SELECT count(*) AS relations FROM pg_catalog.pg_class"


def main() -> int:
    key = sys.stdin.readline().strip()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "query",
            "arguments": {"sql": SQL},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": PROTOCOL,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    request = urllib.request.Request(  # noqa: S310 (the server beside us, on loopback)
        "http://127.0.0.1:8080/mcp",
        data=json.dumps(body).encode(),
        headers={
            "Host": "127.0.0.1:8080",
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL,
            "Mcp-Method": "tools/call",
            "Mcp-Name": "query",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        print(f"smoke query: no answer from the MCP server: {exc}", file=sys.stderr)
        return 1
    if text.startswith("event:") or text.startswith("data:"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    result = json.loads(text).get("result") or {}
    if result.get("isError") or not result.get("structuredContent", {}).get("rows"):
        print(f"smoke query: the MCP server answered no rows: {text[:500]}", file=sys.stderr)
        return 1
    print(f"smoke query: {SQL} -> {result['structuredContent']['rows'][0][0]} relations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
