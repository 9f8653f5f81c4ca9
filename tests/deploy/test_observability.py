"""The dashboard and the alert rules, checked without Prometheus or Grafana running: promtool
checks and unit-tests the rules and checks Compose's Prometheus configuration; every metric and
label a panel or a rule queries must be one that ``/metrics`` really exposes after a worker
served traffic (tests/deploy/scrape.py); Compose provisions both where Grafana and Prometheus
look for them."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from contracts import request_schema
from tests.conftest import FreshDatabase
from tests.deploy.scrape import NEXUS, gauge, metric_samples, scrape_after_traffic, worker_process
from tests.deploy.test_compose_database import _mounts
from tests.deploy.test_packaging import compose
from tests.kafka import KafkaServer
from worker.engine.heal import Outcome

ROOT = Path(__file__).parents[2]
FILES = ROOT / "deploy" / "helm" / "schemaheal" / "files"
ALERTS = FILES / "alerts.yml"
DASHBOARD = FILES / "dashboard.json"
# labels Prometheus adds from the target (scrape config, Kubernetes service discovery)
TARGET_LABELS = frozenset({"instance", "job", "namespace", "pod"})


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    return subprocess.run([tool, *args], capture_output=True, text=True, check=False)


def expressions() -> dict[str, str]:
    """Where → PromQL, for every panel target and every rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    out = {f"panel {p['title']!r} {t['refId']}": t["expr"]
           for p in dashboard["panels"] for t in p["targets"]}  # fmt: skip
    out |= {f"dashboard variable {v['name']!r}": v["definition"]
            for v in dashboard["templating"]["list"] if "definition" in v}  # fmt: skip
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        out |= {f"alert {r['alert']}": r["expr"] for r in group["rules"]}
    return out


def queried(expr: str) -> tuple[set[str], set[str]]:
    """The schemaheal metrics an expression reads, and the labels it names (in selectors,
    ``by``/``without`` clauses and ``label_values``)."""
    metrics = set(re.findall(r"\bschemaheal_[a-z0-9_]+\b", expr))
    labels = set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", expr))
    return metrics, (labels | _grouped(expr)) - TARGET_LABELS


def _grouped(expr: str) -> set[str]:
    """Labels of ``by``/``without`` clauses and ``label_values``."""
    labels = set(re.findall(r"label_values\([a-z_]+,\s*([a-z_]+)\)", expr))
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {name.strip() for name in clause.split(",") if name.strip()}
    return labels


def wanted_labels(expr: str, metric: str) -> set[str]:
    """The labels ``expr`` needs ``metric`` to have: those its own selectors filter by (an
    expression joining two metrics filters each by its own), and every grouping label."""
    own: set[str] = set()
    for selector in re.findall(rf"\b{metric}\{{([^}}]*)\}}", expr):
        own |= set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", selector))
    return (own | _grouped(expr)) - TARGET_LABELS


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = promtool("test", "rules", str(FILES / "alerts_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    unit_tested = (FILES / "alerts_test.yml").read_text()
    assert {r for r in rules if f"alertname: {r}" not in unit_tested} == set()


def test_what_pages_is_what_the_issue_lists() -> None:
    rules = {
        r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
    }
    assert set(rules) == {
        "SchemahealHealBlocked", "SchemahealHealFailed", "SchemahealDeadLetters",
        "SchemahealLockWaitNearBudget", "SchemahealWorkerNotConsuming", "SchemahealNoConsumer",
        "SchemahealBackfillStopped", "SchemahealBackfillStalled",
    }  # fmt: skip
    assert all(r["labels"]["severity"] in ("page", "warning") for r in rules.values())
    outcomes = {v for e in expressions().values() for v in re.findall(r'outcome="([a-z]+)"', e)}
    assert outcomes <= {o.value for o in Outcome}, outcomes


async def test_every_metric_a_panel_or_rule_queries_is_exported_after_a_heal(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    """Metric names as the Prometheus exporter writes them (``_total``, ``_seconds``,
    ``_bucket``) and the labels each query groups or filters by, against a real scrape."""
    text = await scrape_after_traffic(kafka, database)
    exposed = metric_samples(text)
    problems = _bucket_bounds_missing(text)
    for where, expr in expressions().items():
        metrics, _ = queried(expr)
        assert metrics, f"{where} queries no schemaheal metric: {expr}"
        for metric in metrics:
            if metric not in exposed:
                problems.append(f"{where}: {metric} is not exported")
                continue
            has = set().union(*exposed[metric])
            labels = wanted_labels(expr, metric)
            wanted = labels if metric.endswith("_bucket") else labels - {"le"}  # le: buckets'
            missing = wanted - has
            if missing:
                problems.append(f"{where}: {metric} has no label {sorted(missing)}")
    assert problems == []
    queried_anywhere = {m for e in expressions().values() for m in queried(e)[0]}
    families = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for name in exposed
        if name.startswith("schemaheal_")
    }
    assert {f for f in families if not any(m.startswith(f) for m in queried_anywhere)} == set()


def _bucket_bounds_missing(text: str) -> list[str]:
    """A rule on ``le="30"`` silently never fires when 30 s is not a bucket boundary."""
    bounds: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels:
                bounds.setdefault(sample.name, set()).add(sample.labels["le"])
    problems = []
    for where, expr in expressions().items():
        for metric, pattern in re.findall(r'(schemaheal_\w+_bucket)\{[^}]*le=~?"([^"]+)"', expr):
            wanted = pattern.replace("\\\\", "\\")  # PromQL string escapes
            if not any(re.fullmatch(wanted, le) for le in bounds.get(metric, ())):
                problems.append(f"{where}: {metric} has no bucket le={pattern}")
    return problems


def test_compose_prometheus_configuration_passes_promtool(tmp_path: Path) -> None:
    """Compose's Prometheus configuration, with its container paths rewritten to the files
    Compose mounts there, as ``promtool check config`` reads it (rule files included)."""
    services = compose()["services"]
    mounts = _mounts(services["prometheus"]["volumes"])
    config = mounts["/etc/prometheus/prometheus.yml"].read_text()
    for container, host in mounts.items():
        config = config.replace(container, str(host))
    (tmp_path / "prometheus.yml").write_text(config)
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert mounts["/etc/prometheus/rules/alerts.yml"] == ALERTS
    targets = yaml.safe_load(config)["scrape_configs"][0]["static_configs"][0]["targets"]
    workers = sorted(n for n in services if n.startswith("worker-"))
    port = services["worker-1"]["environment"]["SCHEMAHEAL_HEALTH_PORT"]
    assert targets == [f"{w}:{port}" for w in workers]


def test_compose_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    mounts = _mounts(grafana["volumes"])
    provisioning = mounts["/etc/grafana/provisioning"]
    sources = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert [(s["type"], s["url"], s["isDefault"]) for s in sources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]
    assert "9090:9090" in services["prometheus"]["ports"]
    (provider,) = _yaml(provisioning / "dashboards" / "schemaheal.yml")["providers"]
    folder = provider["options"]["path"]
    dashboards = {c: h for c, h in mounts.items() if c.startswith(folder + "/")}
    assert list(dashboards.values()) == [DASHBOARD]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] in dashboards
    dashboard = json.loads(DASHBOARD.read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["query"] == "prometheus"
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"${datasource}"}
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("outcome", "heal duration", "lock wait", "hazard", "drift", "dead letters",
                  "coalesced"):  # fmt: skip
        assert topic in titles, topic


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_compose_monitoring_images_are_pinned(name: str) -> None:
    image = compose()["services"][name]["image"]
    assert re.fullmatch(r"[a-z/]+:v?\d+\.\d+\.\d+", image), image


async def test_the_fetch_age_grows_only_while_fetched_requests_wait(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    """What SchemahealWorkerNotConsuming relies on: while a heal is held up (another session
    holds a table lock) and nobody else asks, the worker keeps fetching and the age stays
    small; once a second request is fetched and waits behind the heal, the age grows; when the
    lock goes, both are answered and the age falls again."""
    await database.execute((NEXUS / "old_shape.sql").read_text())
    holder = await asyncpg.connect(database.dsn)
    await holder.execute("BEGIN; SELECT * FROM tenants")  # the heal will wait at tenants
    manifest = (NEXUS / "manifest.json").read_bytes()
    age = "schemaheal_consumer_fetch_age_seconds"
    try:
        async with worker_process(kafka, database, "--lock-timeout-ms", "200",
                                  "--retry-budget-s", "300") as port:  # fmt: skip
            await until(lambda: gauge(port, age), lambda v: v is not None)
            first = asyncio.create_task(_ask(kafka, manifest, "pod-a"))
            await until(lambda: _stuck_at_tenants(database), bool)
            await asyncio.sleep(WAITING_S + 1)
            assert (await gauge(port, age) or 0) < WAITING_S  # still fetching: nobody waits
            second = asyncio.create_task(_ask(kafka, manifest, "pod-b"))
            await until(lambda: gauge(port, age), lambda v: v is not None and v > WAITING_S)
            await holder.execute("COMMIT")
            replies = await asyncio.gather(first, second)
            assert sorted(r.outcome for r in replies) == ["healed", "unchanged"]
            await until(lambda: gauge(port, age), lambda v: v is not None and v < WAITING_S)
    finally:
        await holder.close()


WAITING_S = 3.0


async def _ask(kafka: KafkaServer, manifest: bytes, instance: str) -> Any:
    return await request_schema(manifest, bootstrap_servers=kafka.bootstrap_servers,
                                instance=instance, timeout_s=120)  # fmt: skip


async def _stuck_at_tenants(database: FreshDatabase) -> bool:
    """The heal got as far as the table the other session holds."""
    return bool(await database.fetch(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'credentials' "
        "AND column_name = 'category'"
    ))  # fmt: skip


async def until(
    read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], timeout_s: float = 90
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done(value := await read()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out; last value {value!r}"
        await asyncio.sleep(0.2)


def test_the_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
