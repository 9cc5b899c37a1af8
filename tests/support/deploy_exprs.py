"""PromQL found in the deploy configs: the Grafana dashboard's targets and variables, the alert
rules' expressions, with Grafana variables substituted so Prometheus itself can evaluate them.

Shared by the offline config checks (tests/unit/test_deploy_configs.py) and the real-Prometheus
test (tests/e2e/test_prometheus.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "scenestream.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

# What the test puts in place of each Grafana variable: "All" for the multi-value ones.
DEFAULT_VARIABLES = {
    "job": "scenestream",
    "instance": ".*",
    "engine": ".*",
    "stage": ".*",
    "__rate_interval": "10s",
    "__interval": "5s",
    "datasource": "prometheus",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Expr:
    """One PromQL expression and where it comes from (for failure messages)."""

    where: str
    promql: str


def substitute(text: str, variables: dict[str, str] | None = None) -> str:
    """Replace `$name` and `${name}` by test values; an unknown variable is an error."""
    values = DEFAULT_VARIABLES if variables is None else variables

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"Grafana variable ${name} has no test value")
        return values[name]

    return _VARIABLE.sub(repl, text)


def load_dashboard() -> dict[str, Any]:
    """The provisioned dashboard as parsed JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows are layout only), nested rows included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_exprs(
    dashboard: dict[str, Any], variables: dict[str, str] | None = None
) -> list[Expr]:
    """Every target expression of every panel, variables substituted (`DEFAULT_VARIABLES`
    unless given, e.g. one `instance` to ask for a single worker's data)."""
    return [
        Expr(f"panel {p['title']!r} target {t['refId']}", substitute(t["expr"], variables))
        for p in dashboard_panels(dashboard)
        for t in p["targets"]
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """`(variable, series selector, label)` of each `label_values(...)` template variable."""
    found = []
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _LABEL_VALUES.match(query.strip())
        assert match, f"variable {var['name']}: unsupported query {query!r}"
        found.append((var["name"], substitute(match["selector"]), match["label"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of every group in the alert rules file."""
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alert_exprs() -> list[Expr]:
    """Every alert rule's expression."""
    return [Expr(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
