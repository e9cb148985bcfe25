"""Where a worker reads (`pgmcp.placement`): the host list the pool connects with once a standby lags past
MCP_MAX_REPLICA_LAG, and, against the native PostgreSQL (a primary), the fallback of `prefer-standby` to the
primary, shown in /readyz and /metrics. Reads on real standbys: tests/stack/test_scale.py."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from devtools.mcp_server import start_mcp_process
from devtools.native_pg import NativePostgres
from devtools.net import http_get
from pgmcp.placement import Placement, Server, sample

pytestmark = pytest.mark.anyio

CONNINFO = {"host": "standby-a,standby-b,primary", "port": "5433,5434,5432", "dbname": "app", "user": "r"}


def server(host: str, *, standby: bool = True, lag: float | None = 0.0) -> Server:
    return Server(host=host, standby=standby, replay_lag_s=lag if standby else None, sampled_at=time.monotonic())


def test_a_standby_past_the_lag_limit_leaves_the_host_list_with_its_port() -> None:
    placement = Placement(CONNINFO, max_lag_ms=2000)
    assert placement.routing and not placement.prefers_standby
    assert placement.observe(server("standby-a", lag=1.5)) is False
    assert placement.conninfo() == CONNINFO
    assert placement.observe(server("standby-b", lag=2.5)) is True  # the pool must be drained
    assert placement.conninfo() == {**CONNINFO, "host": "standby-a,primary", "port": "5433,5432"}
    assert placement.left_out == {"standby-b"}
    # a primary is never left out, however old its last replayed transaction (it replays nothing)
    assert placement.observe(server("primary", standby=False)) is False
    assert placement.observe(server("standby-a", lag=9.0)) is True
    assert placement.conninfo()["host"] == "primary"


def test_the_host_list_never_empties_and_without_a_limit_nothing_is_left_out() -> None:
    one = Placement({"host": "standby-a", "port": "5432"}, max_lag_ms=1000)
    assert one.observe(server("standby-a", lag=60.0)) is True
    assert one.conninfo() == {"host": "standby-a", "port": "5432"}  # nothing else to read from: stay
    unlimited = Placement({**CONNINFO, "target_session_attrs": "prefer-standby"}, max_lag_ms=0)
    assert unlimited.prefers_standby and unlimited.max_lag_s is None
    assert unlimited.observe(server("standby-a", lag=3600.0)) is False
    assert unlimited.conninfo()["host"] == CONNINFO["host"]
    assert not Placement({"host": "db", "port": "5432"}, max_lag_ms=0).routing  # nothing to choose


def test_reads_return_to_standbys_only_from_the_primary_or_a_left_out_standby() -> None:
    placement = Placement({**CONNINFO, "target_session_attrs": "prefer-standby"}, max_lag_ms=2000)
    placement.observe(server("standby-a"))
    assert not placement.wants_probe()
    placement.observe(server("primary", standby=False))
    assert placement.wants_probe()


def test_a_standby_that_drops_a_connection_is_left_out_until_the_probe_finds_it() -> None:
    placement = Placement({**CONNINFO, "target_session_attrs": "prefer-standby"}, max_lag_ms=0)
    assert placement.dropped("standby-a") is False  # never sampled: nothing known about it
    placement.observe(server("standby-a"))
    placement.observe(server("primary", standby=False))
    assert placement.dropped("primary") is False  # the fallback stays
    assert placement.dropped("standby-a") is True  # drain: its other connections are likely broken too
    assert placement.dropped("standby-a") is False  # already out: one drain
    assert placement.conninfo()["host"] == "standby-b,primary"
    assert placement.wants_probe()
    placement.observe(server("standby-b"))
    assert placement.dropped("standby-b") is True
    assert placement.conninfo() == {
        **CONNINFO,
        "target_session_attrs": "prefer-standby",
        "host": "primary",
        "port": "5432",
    }
    # without prefer-standby (a plain host list) a dropped connection is libpq's business
    plain = Placement(CONNINFO, max_lag_ms=2000)
    plain.observe(server("standby-a"))
    assert plain.dropped("standby-a") is False


async def test_the_sample_of_a_primary(pg: NativePostgres) -> None:
    async with await psycopg.AsyncConnection.connect(pg.dsn(), autocommit=True) as conn:
        found = await sample(conn)
    assert (found.standby, found.replay_lag_s) == (False, None)
    assert found.describe() == {"host": pg.host, "role": "primary", "replay_lag_seconds": None}


def test_prefer_standby_falls_back_to_the_primary_and_says_so(pg: NativePostgres) -> None:
    # the first host does not resolve (a standby that is gone): libpq's prefer-standby takes the primary
    overrides = {
        "MCP_DATABASE_HOST": f"standby.invalid,{pg.host}",
        "MCP_DATABASE_TARGET_SESSION_ATTRS": "prefer-standby",
        "MCP_DATABASE_LOAD_BALANCE_HOSTS": "random",
        "MCP_MAX_REPLICA_LAG": "2s",
        "MCP_WORKERS": "2",
        "MCP_POOL_MAX_SIZE": "4",
    }
    with start_mcp_process(pg, overrides=overrides) as mcp:
        host = {"Host": f"127.0.0.1:{mcp.port}"}
        status, body = http_get(f"{mcp.base}/readyz", headers=host)
        assert status == 200
        assert json.loads(body)["database"] == {"host": pg.host, "role": "primary", "replay_lag_seconds": None}
        metrics = http_get(f"{mcp.base}/metrics", headers=host)[1]
    reads = [line for line in metrics.splitlines() if line.startswith("pgmcp_database_reads_from{")]
    assert len(reads) == 2 and all('role="primary"' in line and line.endswith(" 1.0") for line in reads), reads
    assert {line.split('worker="')[1][0] for line in reads} == {"0", "1"}
