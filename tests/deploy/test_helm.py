"""The Helm chart and the init-container example, checked without a cluster: ``helm lint`` and
``helm template`` for every values set in deploy/helm/schemaheal/ci/, every rendered object
validated against the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail) for
the oldest Kubernetes the chart supports and the newest the schemas know, and every
``SCHEMAHEAL_*`` variable the chart sets read by the worker's own settings model."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from contracts import load_manifest
from tests.deploy import chart_schema
from tests.deploy.helm import helm
from worker.cli import build_parser
from worker.service.access import parse_policy
from worker.settings import WorkerSettings
from worker.settings_kafka import KafkaSettings

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "schemaheal"
VALUES = sorted((CHART / "ci").glob("*.yaml"))
EXAMPLE = ROOT / "deploy" / "kubernetes" / "orchestrator-example.yaml"
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no schema in kubernetes-validate


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm()), *args], capture_output=True, text=True, check=False)


@cache
def render(values: Path | None, kube_version: str = KUBE_VERSIONS[-1]) -> tuple[Any, ...]:
    """The chart's objects, released as ``sh`` in namespace ``schemaheal``."""
    given = ["-f", str(values)] if values else []
    done = run_helm("template", "sh", str(CHART), "--namespace", "schemaheal",
                    "--kube-version", kube_version, *given)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def of_kind(objects: tuple[Any, ...], kind: str) -> list[Any]:
    return [o for o in objects if o["kind"] == kind]


def worker_container(objects: tuple[Any, ...]) -> Any:
    (deployment,) = of_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_helm_lint_passes_strict(values: Path) -> None:
    done = run_helm("lint", "--strict", str(CHART), "-f", str(values))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_every_rendered_object_fits_the_kubernetes_schemas(values: Path, kube_version: str) -> None:
    objects = render(values, kube_version)
    assert {"Deployment", "Service"} <= {o["kind"] for o in objects}
    for obj in objects:
        if obj["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(obj, kube_version, strict=True)


def test_the_values_sets_cover_every_optional_object() -> None:
    kinds = {o["kind"] for v in VALUES for o in render(v)}
    assert kinds == {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget",
                     "NetworkPolicy", "ConfigMap", "ServiceMonitor", "PrometheusRule"}  # fmt: skip


def _files_for(env: dict[str, str], into: Path) -> dict[str, str]:
    """The environment with every path the chart mounts replaced by a local file of the same
    kind of content, so that the settings model can read it."""
    content = {"databases": "nexus=postgresql://schemaheal:secret@db:5432/nexus\n"}
    out = dict(env)
    for name, value in env.items():
        if value.startswith("/etc/schemaheal/"):
            local = into / name
            local.write_text(content.get(Path(value).name, "x\n"))
            out[name] = str(local)
    return out


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_every_schemaheal_variable_the_chart_sets_is_a_setting_the_worker_reads(
    values: Path, tmp_path: Path
) -> None:
    container = worker_container(render(values))
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    ours = {k: v for k, v in env.items() if k.startswith("SCHEMAHEAL_")}
    known = {f"SCHEMAHEAL_{name.upper()}" for name in WorkerSettings.model_fields}
    assert set(ours) <= known, set(ours) - known
    local = _files_for(ours, tmp_path)
    settings = WorkerSettings(
        **{k.removeprefix("SCHEMAHEAL_").lower(): v for k, v in local.items()}
    )
    settings.kafka_auth()  # the Kafka settings fit together
    settings.heal_options()  # and so do the timeouts
    assert list(settings.databases) == ["nexus"]
    assert settings.health_host == "0.0.0.0"
    assert {k for k in env if not k.startswith("SCHEMAHEAL_")} <= {
        k for k in env if k.startswith("OTEL_")
    }
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for name, value in ours.items():
        if value.startswith("/etc/schemaheal/"):
            assert str(Path(value).parent) in mounts, f"{name}: {value} is not mounted"


@pytest.mark.parametrize("values", VALUES, ids=[v.stem for v in VALUES])
def test_the_deployment_is_probed_non_root_read_only_and_waits_for_a_heal(
    values: Path, tmp_path: Path
) -> None:
    objects = render(values)
    (deployment,) = of_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(objects)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = WorkerSettings(**{k.removeprefix("SCHEMAHEAL_").lower(): v
                                 for k, v in _files_for(env, tmp_path).items()
                                 if k.startswith("SCHEMAHEAL_")})  # fmt: skip
    given = yaml.safe_load(values.read_text()).get("terminationGracePeriodSeconds")
    derived = int(settings.max_heal_s + settings.lock_wait_s + 30)
    assert pod["terminationGracePeriodSeconds"] == (given or derived)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", settings.health_port)
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {k: (p["path"], p["port"]) for k, p in probes.items()} == {
        "startupProbe": ("/livez", "http"), "livenessProbe": ("/livez", "http"),
        "readinessProbe": ("/readyz", "http"),
    }  # fmt: skip
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["automountServiceAccountToken"] is False
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for obj in of_kind(objects, "Service") + of_kind(objects, "PodDisruptionBudget"):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= pod_labels.items(), obj["kind"]


def test_the_network_policy_lets_out_only_kafka_databases_and_dns() -> None:
    (policy,) = of_kind(render(None), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432, 9092]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    named = of_kind(render(CHART / "ci" / "monitoring-values.yaml"), "NetworkPolicy")[0]
    kafka, databases, _dns = named["spec"]["egress"]
    assert kafka["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "kafka"}
    assert databases["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_the_access_policy_from_values_is_one_the_worker_accepts() -> None:
    objects = render(CHART / "ci" / "sasl-tls-values.yaml")
    (config,) = of_kind(objects, "ConfigMap")
    policy = parse_policy(json.loads(config["data"]["access-policy.json"]))
    assert policy.requires_signature("orchestrator")
    (volume,) = [v for v in objects[-1]["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "access-policy"]  # fmt: skip
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    mounts = worker_container(objects)["volumeMounts"]
    assert not any("subPath" in m for m in mounts), "subPath mounts never see ConfigMap updates"


def test_the_monitoring_objects_carry_the_rules_and_dashboard_as_committed() -> None:
    objects = render(CHART / "ci" / "monitoring-values.yaml")
    (rule,) = of_kind(objects, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yml").read_text())
    (monitor,) = of_kind(objects, "ServiceMonitor")
    (service,) = of_kind(objects, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (dashboard,) = [c for c in of_kind(objects, "ConfigMap") if "schemaheal.json" in c["data"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["schemaheal.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def test_a_release_without_the_databases_secret_is_refused_with_what_to_do(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("databases: {secretName: ''}\n")
    done = run_helm("template", "sh", str(CHART), "--kube-version", KUBE_VERSIONS[-1],
                    "-f", str(values))  # fmt: skip
    assert done.returncode != 0
    assert "databases.secretName: name the Secret that holds the ALIAS=DSN lines" in done.stderr


def test_the_orchestrator_example_fits_the_schemas_and_awaits_its_manifest() -> None:
    """The init container's command line is one ``schemaheal await-schema`` accepts, its
    manifest is the seed's (and valid), and the signing key it names is mounted."""
    objects = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    for obj in objects:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    config, deployment = objects
    seed = (ROOT / "examples" / "nexus" / "manifest.json").read_text()
    assert json.loads(config["data"]["manifest.json"]) == json.loads(seed)
    load_manifest(config["data"]["manifest.json"].encode())
    pod = deployment["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    args = build_parser().parse_args(init["args"])
    assert args.command == "await-schema"
    mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    manifest_dir = str(Path(args.manifest).parent)
    assert volumes[mounts[manifest_dir]]["configMap"]["name"] == config["metadata"]["name"]
    key_dir = str(Path(args.signing_key).parent)
    assert "secret" in volumes[mounts[key_dir]]
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert "POD_NAME" in env and args.instance == "$(POD_NAME)"
    ours = {k: v for k, v in env.items() if k.startswith("SCHEMAHEAL_")}
    assert set(ours) <= {f"SCHEMAHEAL_{n.upper()}" for n in KafkaSettings.model_fields}
    kafka = KafkaSettings(**{k.removeprefix("SCHEMAHEAL_").lower(): v for k, v in ours.items()})
    assert kafka.bootstrap_servers == "kafka.kafka:9092"
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_values_schema_is_generated_from_the_settings_model() -> None:
    assert chart_schema.SCHEMA.read_text() == chart_schema.rendered(), (
        "values.schema.json is stale: python -m tests.deploy.chart_schema --write"
    )
    assert set(yaml.safe_load((CHART / "values.yaml").read_text())) <= set(
        chart_schema.values_schema()["properties"]
    )


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ("settings: {lock_wiat_s: 3}", "additional properties 'lock_wiat_s' not allowed"),
        ("settings: {max_heal_s: -3}", "/settings/max_heal_s"),
        ("settings: {database_proxy: transaction}", "/settings/database_proxy"),
        ("settings: {kafka_sasl_password: hunter2}", "'kafka_sasl_password' not allowed"),
        ("kafka: {securityProtocol: TLS}", "/kafka/securityProtocol"),
        ("replicas: 3", "additional properties 'replicas' not allowed"),
    ],
)  # fmt: skip
def test_a_misspelt_or_invalid_value_is_refused_before_any_pod_starts(
    values: str, says: str, tmp_path: Path
) -> None:
    """The worker ignores unknown SCHEMAHEAL_* variables; the chart's schema does not."""
    given = tmp_path / "values.yaml"
    given.write_text(values + "\n")
    done = run_helm("lint", "--strict", str(CHART), "-f", str(given))
    assert done.returncode != 0
    assert says in done.stdout + done.stderr
