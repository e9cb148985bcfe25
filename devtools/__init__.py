"""Developer tools shared by the tests, the benchmarks and ops/: a throwaway native PostgreSQL 18
(`native_pg`), `python -m pgmcp` in a subprocess and the conformance suite's target (`mcp_server`), the
BACKUP_* settings for a native server (`backup_env`), polling with a deadline (`wait`), loopback ports and GETs
(`net`). Plain code, no pytest: tests/fixtures/ wraps it in fixtures."""
