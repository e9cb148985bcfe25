"""The alert rules (compose/prometheus/alerts.yml) and the runbooks agree: every expression a runbook quotes
is a rule's, word for word, next to that rule's name; every rule names a runbook that exists and mentions it;
every rule has a promtool unit test (tests/prometheus/alerts.test.yml, run by tests/stack/test_alert_rules.py)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from devtools.paths import REPO

RULES = REPO / "compose" / "prometheus" / "alerts.yml"
UNIT_TESTS = REPO / "tests" / "prometheus" / "alerts.test.yml"
RUNBOOKS = sorted((REPO / "runbooks").glob("*.md"))
# a backticked span that holds a metric of the stack and a comparison: an alert expression
QUOTED = re.compile(r"`([^`]*\b(?:pgbackup_|pgmcp_|pg_|up\b)[^`]*(?:>|<|==|!=)[^`]*)`")
FENCE = re.compile(r"```.*?```", re.DOTALL)
NAMED = re.compile(r"`([A-Z][A-Za-z]+)` \(`([^`]+)`")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_has_a_name_a_severity_a_summary_and_an_existing_runbook_that_names_it() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) >= 15
    for rule in rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        runbook = REPO / rule["annotations"]["runbook"]
        assert runbook.is_file(), f"{rule['alert']}: no runbook {runbook}"
        assert f"`{rule['alert']}` (`{rule['expr']}`)" in " ".join(runbook.read_text().split()), (
            f"{runbook.name} does not show {rule['alert']} with its expression"
        )


def test_every_expression_a_runbook_quotes_is_a_rule() -> None:
    expressions = {rule["expr"] for rule in rules()}
    quoted = 0
    for page in RUNBOOKS:
        text = " ".join(FENCE.sub(" ", page.read_text()).split())  # prose only; an expression may wrap over lines
        for expression in QUOTED.findall(text):
            quoted += 1
            assert expression in expressions, f"{page.name} quotes `{expression}`, which is no alert rule"
        for name, expression in NAMED.findall(text):
            matching = [rule for rule in rules() if rule["alert"] == name]
            assert matching and matching[0]["expr"] == expression, f"{page.name}: {name} is not `{expression}`"
    assert quoted >= len(rules())


def test_every_rule_has_a_unit_test_that_sees_it_fire_and_stay_quiet() -> None:
    document = yaml.safe_load(UNIT_TESTS.read_text())
    cases = [case for test in document["tests"] for case in test["alert_rule_test"]]
    for rule in rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"no promtool test sees {rule['alert']} fire"
        assert any(not case["exp_alerts"] for case in mine), f"no promtool test sees {rule['alert']} stay quiet"
    assert document["rule_files"] == ["/rules/alerts.yml"]
