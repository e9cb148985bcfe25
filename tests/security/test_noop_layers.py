"""The attack runs can fail: with a layer replaced by a no-op, the runs of that layer alone do.

RO becomes a plain `BEGIN` (the call is still rolled back); ROLE becomes a writer role (`app_owner`, owner of the
demo schema). Each run of `test_attacks.py` for that layer alone is checked by the same `check_run` against a
server of this module's own (the sabotaged layers really write there), and every run that the corpus says the
layer answers with a SQLSTATE (`corpus.DATABASE_SQLSTATES`) must now fail. The runs proven another way
(`corpus.PROVEN_OTHERWISE`, a rollback or a clean next session) are counted apart: they are why RO and ROLE are
never the only layers against those attacks."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from devtools.native_pg import NativePostgres
from pgmcp import transaction
from pgmcp.layers import Layers
from tests.security.corpus import DATABASE_SQLSTATES, PROVEN_OTHERWISE, Run, runs
from tests.security.harness import McpHarness, harness_settings
from tests.security.state import capture_state
from tests.security.test_attacks import check_run


@pytest.fixture
def victim() -> Iterator[NativePostgres]:
    """A server the sabotaged layers may damage: never the session's."""
    with NativePostgres(demo_orders=50) as server:
        yield server


def failures(server: NativePostgres, harness: McpHarness, planned: list[Run]) -> dict[str, bool]:
    """run id -> whether check_run failed it (an AssertionError), each against a fresh baseline."""
    outcome: dict[str, bool] = {}
    with (
        psycopg.connect(server.dsn(), autocommit=True) as checker,
        psycopg.connect(server.dsn(), autocommit=True) as listener,
    ):
        listener.execute("LISTEN pgmcp_attack")
        for run in planned:
            baseline = capture_state(checker)
            try:
                check_run(run, harness, checker, baseline, listener, {})
            except AssertionError:
                outcome[run.id] = True
            else:
                outcome[run.id] = False
    return outcome


def alone(layer: str) -> list[Run]:
    return [run for run in runs() if run.layers == (layer,)]


def test_ro_as_a_plain_begin_fails_every_ro_run_with_a_sqlstate(
    victim: NativePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = transaction.Transaction.begin_statement
    monkeypatch.setattr(
        transaction.Transaction,
        "begin_statement",
        lambda self: original(self).replace("BEGIN READ ONLY", "BEGIN", 1),
    )
    layers = Layers.only("ro")
    harness = McpHarness(harness_settings(victim, layers), layers)  # as test_attacks runs RO alone: the superuser
    try:
        outcome = failures(victim, harness, alone("ro"))
    finally:
        harness.close()
    answered = {run.id for run in alone("ro") if (run.attack.id, "ro") in DATABASE_SQLSTATES}
    assert answered and all(outcome[run_id] for run_id in answered), sorted(
        run_id for run_id in answered if not outcome[run_id]
    )
    assert {run.attack.id for run in alone("ro")} == {key[0] for key in DATABASE_SQLSTATES if key[1] == "ro"} | {
        key[0] for key in PROVEN_OTHERWISE if key[1] == "ro"
    }


@pytest.mark.parametrize(
    ("user", "codes"),
    [("postgres", {"25006", "42501"}), ("app_owner", {"25006"})],
    ids=["superuser", "writer-role"],
)
def test_role_replaced_by_a_stronger_role_fails_the_role_runs(
    victim: NativePostgres, user: str, codes: set[str]
) -> None:
    """As the superuser every ROLE run with a SQLSTATE fails; as a writer role (read-write sessions, owner of the
    demo schema) every run refused as read-only (25006) does. The writer role still cannot signal other sessions
    or read server files (42501): those need the superuser, and are the superuser case's."""
    layers = Layers.only("role")
    settings = harness_settings(
        victim,
        layers,
        database_user=user,
        database_password=victim.passwords[user],
        dev_allow_privileged_role=True,  # the startup audit would refuse the stronger role first
    )
    harness = McpHarness(settings, layers)
    try:
        outcome = failures(victim, harness, alone("role"))
    finally:
        harness.close()
    answered = {run.id for run in alone("role") if DATABASE_SQLSTATES.get((run.attack.id, "role")) in codes}
    assert answered and all(outcome[run_id] for run_id in answered), sorted(
        run_id for run_id in answered if not outcome[run_id]
    )
