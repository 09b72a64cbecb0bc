"""Alerting rules (helm/alerts/rules.yaml): promtool's own unit tests (helm/alerts/tests.yaml, a
firing and a non-firing case per alert) run here with Debian's real promtool, and every rule
names only declared gateway series, vLLM series or series recorded in the same file."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from metric_names import TARGET_LABELS, grouping_labels, known_series, query_problems

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "helm" / "alerts"
RULES = yaml.safe_load((ALERTS / "rules.yaml").read_text())
TESTS = yaml.safe_load((ALERTS / "tests.yaml").read_text())


def rules() -> list[dict]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/install.sh installs Debian's prometheus package"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_file_is_valid():
    result = promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", "tests.yaml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == {"ToolorchErrorBudgetBurnFast", "ToolorchErrorBudgetBurnSlow", "ToolorchLatencyP99High",
                      "ToolorchNoReadyEngine", "ToolorchExpertErrorSpike", "ToolorchBudgetExhaustionSpike",
                      "ToolorchCostPerRequestDrift", "ToolorchMalformedCallsHigh"}
    checks = [c for test in TESTS["tests"] for c in test.get("alert_rule_test", [])]
    for alert in alerts:
        outcomes = {bool(c["exp_alerts"]) for c in checks if c["alertname"] == alert}
        assert outcomes == {True, False}, f"{alert}: needs a firing and a non-firing case"


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path):
    """The budget alert at 50% instead of 20% must fail its firing case: the tests bite."""
    mutated = (ALERTS / "rules.yaml").read_text().replace("rate(toolorch_requests_total[15m])) > 0.2",
                                                           "rate(toolorch_requests_total[15m])) > 0.5")
    assert mutated != (ALERTS / "rules.yaml").read_text()
    (tmp_path / "rules.yaml").write_text(mutated)
    firing = [t for t in TESTS["tests"] if t["name"] == "budget exhaustion spike fires for the cost budget"]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({**TESTS, "tests": firing}))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "ToolorchBudgetExhaustionSpike" in result.stdout + result.stderr


def test_rules_name_only_real_series():
    known = known_series()
    for rule in rules():  # a recorded series is known to the rules after it, with its grouping labels
        problems = query_problems(rule["expr"], known)
        assert not problems, f"{rule.get('alert') or rule['record']}: {problems}"
        if "record" in rule:
            known[rule["record"]] = (TARGET_LABELS | grouping_labels(rule["expr"])) - {"le"}


@pytest.mark.parametrize("alert", [r for r in rules() if "alert" in r], ids=lambda r: r["alert"])
def test_alerts_say_how_bad_and_what(alert):
    assert alert["labels"]["severity"] in {"critical", "warning"}
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert alert.get("for"), "an alert without `for` pages on a single scrape"
