"""The deployment files against their schemas and against the code they run.

deploy/compose.yaml is validated against the Compose Specification's JSON Schema (the copy
check-jsonschema ships), deploy/k8s/ against the Kubernetes API schemas (the copies
kubernetes-validate ships), both offline. Then the files are checked against each other and the
code: every command is a real command line of a real module, every environment variable is a
setting some service reads, every setting whose default only fits the local stack is set, the
replicas of a consumer group stay within its topics' partitions, and compose and Kubernetes run
the same processes. Unit tests: no Docker, no cluster, no network.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic.fields import FieldInfo

from deploy import provision
from deploy.local.kafka_config import kafka_version
from deploy.local.layout import KAFKA_POM, REPO_ROOT
from services.contracts.settings import PlatformSettings
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    CIVIL_EVENTS,
    MATCHER_MEMBER_FACTS,
    MATCHER_MEMBERSHIPS,
    TOPICS_BY_NAME,
    WELFARE_REGISTRATIONS,
)
from services.ingest.__main__ import main as ingest_main
from services.ingest.settings import IngestSettings
from services.logbook import consumer as logbook_consumer
from services.logbook.__main__ import main as logbook_main
from services.logbook.settings import LogbookSettings
from services.matcher.settings import MatcherSettings
from services.reporting import consumer as reporting_consumer
from services.reporting.__main__ import main as reporting_main
from services.reporting.settings import ReportingSettings

DEPLOY = REPO_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
GATEWAY_CONF = DEPLOY / "gateway.conf"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
# A placeholder applied by hand, never by `kubectl apply -k` (see its header).
SECRET_FILE = K8S / "secret.yaml"

# What each module of the image reads its settings with.
SETTINGS: dict[str, type[PlatformSettings]] = {
    "services.ingest": IngestSettings,
    "services.matcher": MatcherSettings,
    "services.logbook": LogbookSettings,
    "services.reporting": ReportingSettings,
    "deploy.provision": provision.ProvisionSettings,
}
# Command lines: argparse mains that take argv (the matcher takes no arguments at all).
MAINS: dict[str, Callable[[list[str] | None], int]] = {
    "services.ingest": ingest_main,
    "services.logbook": logbook_main,
    "services.reporting": reporting_main,
    "deploy.provision": provision.main,
}
# The topics each consumer group reads: its replicas beyond their partitions would idle.
CONSUMED_TOPICS: dict[str, tuple[str, ...]] = {
    # services/matcher/worker.py: the household and person agents' inputs
    "matcher": tuple(
        spec.name
        for spec in (
            BMN_HOUSEHOLDS,
            MATCHER_MEMBER_FACTS,
            WELFARE_REGISTRATIONS,
            CIVIL_EVENTS,
            MATCHER_MEMBERSHIPS,
        )
    ),
    "logbook-worker": logbook_consumer.TOPICS,
    "reporting-worker": reporting_consumer.TOPICS,
}
# Kubernetes versions the manifests must be valid for: the oldest still commonly offered by
# managed clusters, and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


# --- reading the files ---------------------------------------------------------------------------


def _compose_raw() -> dict[str, Any]:
    # safe_load resolves the anchors and `<<` merges as compose does.
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's interpolation with no variable set: `${X:-default}` is its default, and a
    required `${X:?message}` gets a stand-in (the operator must set it)."""
    if isinstance(value, str):
        return _VARIABLE.sub(
            lambda m: m["arg"] if m["op"] == ":-" else "operator-set", value
        ).replace("$$", "$")
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(_interpolate(_compose_raw()))


def _tpmap_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run the tpmap image (the ones built from deploy/Dockerfile)."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def _one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


@dataclass(frozen=True)
class K8sDocument:
    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


def _k8s_documents() -> list[K8sDocument]:
    return [
        K8sDocument(path, body)
        for path in sorted(K8S.glob("*.yaml"))
        if path != KUSTOMIZATION
        for body in yaml.safe_load_all(path.read_text())
        if body is not None
    ]


K8S_DOCUMENTS = _k8s_documents()


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc.name: doc.body for doc in K8S_DOCUMENTS if doc.kind == kind}


def _pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _k8s_environment(container: Mapping[str, Any]) -> dict[str, str]:
    """A container's environment: its envFrom ConfigMap and Secret, then its own env."""
    config_maps = _of_kind("ConfigMap")
    secrets = _of_kind("Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= config_maps[source["configMapRef"]["name"]]["data"]
        else:
            env |= secrets[source["secretRef"]["name"]]["stringData"]
    env |= {item["name"]: item["value"] for item in container.get("env", [])}
    return env


def _k8s_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, container) of every Deployment's and Job's containers, init included."""
    for kind in ("Deployment", "Job"):
        for name, workload in _of_kind(kind).items():
            pod = _pod_spec(workload)
            for container in pod.get("initContainers", []) + pod["containers"]:
                yield name, container


def _k8s_main_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = _pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


# --- schemas -------------------------------------------------------------------------------------


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            *("-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    result = _check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_with_variables_at_their_defaults_follows_the_specification(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    resolved = tmp_path / "compose.yaml"
    resolved.write_text(yaml.safe_dump(compose))
    result = _check_compose_schema(resolved)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator really validates: an unknown key and a wrong condition fail."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        "services:\n  app:\n    image: tpmap\n    replicaz: 2\n"
        "    depends_on:\n      db:\n        condition: service_ready\n"
    )
    result = _check_compose_schema(broken)
    assert result.returncode != 0
    assert "replicaz" in result.stdout + result.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "document", K8S_DOCUMENTS, ids=[f"{d.path.name}:{d.kind}:{d.name}" for d in K8S_DOCUMENTS]
)
def test_k8s_manifest_follows_the_kubernetes_schema(document: K8sDocument, version: str) -> None:
    # strict: a field the API does not know (a typo) fails instead of being dropped.
    kubernetes_validate.validate(document.body, version, strict=True)


def test_the_k8s_schema_check_rejects_a_broken_manifest() -> None:
    deployment = next(d for d in K8S_DOCUMENTS if d.kind == "Deployment").body
    container = dict(_k8s_main_container(deployment), imagePullPolicyy="Always")
    broken = {
        **deployment,
        "spec": {
            **deployment["spec"],
            "template": {
                **deployment["spec"]["template"],
                "spec": {**_pod_spec(deployment), "containers": [container]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_kustomization_applies_every_manifest_but_the_placeholder_secret() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION.name, SECRET_FILE.name}
    assert listed == on_disk
    assert kustomization["namespace"] in _of_kind("Namespace")
    assert [image["name"] for image in kustomization["images"]] == ["tpmap"]


# --- commands ------------------------------------------------------------------------------------


def _command_lines() -> set[tuple[str, ...]]:
    compose = dict(_interpolate(_compose_raw()))
    lines = {tuple(svc["command"]) for svc in _tpmap_services(compose).values()}
    lines |= {tuple(container["args"]) for _, container in _k8s_containers()}
    return lines


@pytest.mark.parametrize("line", sorted(_command_lines()), ids=" ".join)
def test_every_command_line_is_one_the_module_accepts(
    line: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert line[:2] == ("python", "-m"), "the image runs modules: python -m MODULE ..."
    module, arguments = line[2], list(line[3:])
    assert module in SETTINGS, f"{module} is not a module of the image"
    if module == "services.matcher":
        assert arguments == [], "the matcher's worker takes no arguments"
        return
    # --help after the arguments: argparse checks them, prints help and exits 0, runs nothing.
    with pytest.raises(SystemExit) as exit_:
        MAINS[module]([*arguments, "--help"])
    assert exit_.value.code == 0, capsys.readouterr().err


def test_k8s_keeps_the_image_entrypoint() -> None:
    """Containers give `args`, never `command`, so the image's tini stays PID 1 (it forwards
    SIGTERM; a Python PID 1 without a handler ignores it)."""
    for name, container in _k8s_containers():
        assert "command" not in container, name
        assert container["image"] == "tpmap", name
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in DOCKERFILE.read_text()


def test_compose_and_k8s_run_the_same_processes(compose: dict[str, Any]) -> None:
    services = _tpmap_services(compose)
    deployments = _of_kind("Deployment")
    jobs = _of_kind("Job")
    long_running = {name for name, svc in services.items() if not _one_shot(svc)}
    assert long_running == set(deployments)
    for name in long_running:
        container = _k8s_main_container(deployments[name])
        assert container["args"] == services[name]["command"], name
    one_shots = {tuple(svc["command"]) for svc in services.values() if _one_shot(svc)}
    assert one_shots == {tuple(_k8s_main_container(job)["args"]) for job in jobs.values()}


def test_every_deployment_waits_for_the_topics() -> None:
    for name, deployment in _of_kind("Deployment").items():
        init = _pod_spec(deployment).get("initContainers", [])
        assert [c["args"] for c in init] == [
            ["python", "-m", "deploy.provision", "topics", "--check"]
        ], name


def test_compose_services_start_after_the_topics_and_their_migrations(
    compose: dict[str, Any],
) -> None:
    services = _tpmap_services(compose)
    for name, svc in services.items():
        if _one_shot(svc):
            continue
        depends = svc["depends_on"]
        assert depends["topics"]["condition"] == "service_completed_successfully", name
        module = svc["command"][2]
        migrate = [
            other
            for other, candidate in services.items()
            if _one_shot(candidate) and candidate["command"] == ["python", "-m", module, "migrate"]
        ]
        for other in migrate:  # the matcher has no database, so no migration
            assert depends[other]["condition"] == "service_completed_successfully", name


# --- settings ------------------------------------------------------------------------------------


def _env_names(settings: type[PlatformSettings]) -> dict[str, FieldInfo]:
    """Environment variable -> field, as pydantic-settings reads them."""
    prefix = settings.model_config.get("env_prefix", "")
    names = {}
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names[(alias if isinstance(alias, str) else prefix + name).upper()] = field
    return names


KNOWN_SETTINGS = {name for cls in SETTINGS.values() for name in _env_names(cls)}


def _must_be_set(field: FieldInfo) -> bool:
    """Required, or a default that only fits the local stack: its address (127.0.0.1) or its
    folder (.local/, relative to a checkout; the image's /app is read-only)."""
    if field.is_required():
        return True
    default = str(field.default)
    return "127.0.0.1" in default or default.startswith(".local")


def _containers_with_environment(
    compose: Mapping[str, Any],
) -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(where, command line, environment) of every tpmap container in compose and k8s."""
    for name, svc in _tpmap_services(compose).items():
        env = {key: str(value) for key, value in svc["environment"].items()}
        yield f"compose:{name}", svc["command"], env
    for name, container in _k8s_containers():
        yield f"k8s:{name}/{container['name']}", container["args"], _k8s_environment(container)


def test_every_container_sets_what_its_settings_need(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for where, line, env in _containers_with_environment(compose):
        settings = SETTINGS[line[2]]
        unknown = set(env) - KNOWN_SETTINGS
        assert not unknown, f"{where}: no service reads {sorted(unknown)}"
        needed = {name for name, field in _env_names(settings).items() if _must_be_set(field)}
        unset = needed - set(env)
        assert not unset, f"{where}: {sorted(unset)} keep their local-stack default"
        # The values parse as the service would parse them (ports are numbers, and so on).
        for name in KNOWN_SETTINGS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings(_env_file=None)


def test_the_secret_holds_the_database_url_and_the_config_map_does_not() -> None:
    (secret,) = yaml.safe_load_all(SECRET_FILE.read_text())
    assert set(secret["stringData"]) == {"DATABASE_URL"}
    for name, config_map in _of_kind("ConfigMap").items():
        assert "DATABASE_URL" not in config_map["data"], name
    assert "CHANGE-ME" in secret["stringData"]["DATABASE_URL"], "placeholder values only"


def test_http_ports_agree_everywhere(compose: dict[str, Any]) -> None:
    """The port a service listens on (its setting) is the one probed, exposed and proxied."""
    services = _tpmap_services(compose)
    deployments = _of_kind("Deployment")
    k8s_services = _of_kind("Service")
    gateway = GATEWAY_CONF.read_text()
    for name in ("ingest", "logbook", "reporting"):
        variable = f"{name.upper()}_PORT"
        port = int(services[name]["environment"][variable])
        assert f"http://127.0.0.1:{port}/readyz" in services[name]["healthcheck"]["test"]
        assert f"server {name}:{port} resolve;" in gateway
        assert f"{port}:{port}" in "".join(compose["services"]["gateway"]["ports"])
        container = _k8s_main_container(deployments[name])
        assert int(_k8s_environment(container)[variable]) == port
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        assert k8s_services[name]["spec"]["ports"][0]["port"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_services_select_their_own_pods() -> None:
    for name, service in _of_kind("Service").items():
        pod_labels = _of_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()


# --- scaling -------------------------------------------------------------------------------------


def test_every_deployment_has_an_autoscaler_that_owns_its_replicas() -> None:
    autoscalers = _of_kind("HorizontalPodAutoscaler")
    for name, deployment in _of_kind("Deployment").items():
        target = autoscalers[name]["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        # A replica count in the Deployment would be reset on every apply, under the HPA.
        assert "replicas" not in deployment["spec"], name
        assert autoscalers[name]["spec"]["minReplicas"] >= 2, f"{name}: one pod is no failover"
        # Utilization is measured against the CPU request.
        assert "cpu" in _k8s_main_container(deployment)["resources"]["requests"], name


@pytest.mark.parametrize("name", sorted(CONSUMED_TOPICS))
def test_consumer_replicas_stay_within_their_topics_partitions(
    name: str, compose: dict[str, Any]
) -> None:
    partitions = min(TOPICS_BY_NAME[topic].partitions for topic in CONSUMED_TOPICS[name])
    autoscaler = _of_kind("HorizontalPodAutoscaler")[name]
    assert autoscaler["spec"]["maxReplicas"] <= partitions
    assert int(compose["services"][name]["deploy"]["replicas"]) <= partitions


def test_compose_runs_replicas_of_every_service_that_scales(compose: dict[str, Any]) -> None:
    for name, svc in _tpmap_services(compose).items():
        if not _one_shot(svc):
            assert int(svc["deploy"]["replicas"]) >= 2, name


# --- images --------------------------------------------------------------------------------------


def test_kafka_image_is_the_local_stacks_version(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["image"] == (
        f"apache/kafka:{kafka_version(KAFKA_POM.read_text())}"
    )
    environment = compose["services"]["kafka"]["environment"]
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the registry makes them


def test_image_python_is_the_one_the_lock_was_resolved_for() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    minor = re.search(r"<3\.(\d+)", project["requires-python"])
    assert minor is not None
    expected = f"3.{int(minor[1]) - 1}"
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-", DOCKERFILE.read_text(), re.M)
    assert image == expected


def test_image_installs_the_lock_with_hashes_and_runs_unprivileged() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert "pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock" in (
        dockerfile
    )
    assert "npm ci" in dockerfile
    assert "services/reporting/web/package-lock.json" in dockerfile
    (uid,) = re.findall(r"^ARG UID=(\d+)$", dockerfile, re.M)
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", dockerfile, re.M)
    for name, workload in {**_of_kind("Deployment"), **_of_kind("Job")}.items():
        security = _pod_spec(workload)["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == int(uid), name


def test_image_copies_only_what_exists_and_ignores_local_state() -> None:
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (REPO_ROOT / source).exists(), line
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".local", ".cache", ".git", "**/node_modules"} <= ignored
