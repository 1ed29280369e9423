"""The local stack against its real processes: a second stack's life cycle. (Thai text through
the session's Kafka and PostgreSQL: tests/service/test_contracts_on_the_stack.py.)"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from deploy.local import kafka_broker, postgres_cluster
from deploy.local.layout import REPO_ROOT, StackLayout
from deploy.local.ports import HOST, port_is_open
from services.contracts.topics import TOPICS

pytestmark = pytest.mark.stack


def _free_ports(count: int) -> list[int]:
    """Distinct ports free now (all bound at once, so the OS can't hand out one twice)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((HOST, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _pid_is_gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for init to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.fixture
def second_home() -> Iterator[Path]:
    # Not pytest's tmp_path: that lies in a mode-0700 folder, which the OS user PostgreSQL runs
    # as (when the tests run as root) could not enter.
    home = Path(tempfile.mkdtemp(prefix="tpmap-second-stack-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _deploy(env: dict[str, str], command: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.local", command, *options],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _server_pids(layout: StackLayout) -> tuple[int | None, int | None]:
    user = postgres_cluster.server_user(create=False)
    data = postgres_cluster.data_folder(layout, user)
    return kafka_broker.running_pid(layout), postgres_cluster.running_pid(data)


def test_second_stack_comes_up_once_has_every_topic_and_goes_down_completely(
    second_home: Path,
) -> None:
    kafka_port, controller_port, postgres_port = _free_ports(3)
    env = os.environ | {
        "TPMAP_HOME": str(second_home),
        # The jars are shared with the main stack: nothing to download again.
        "TPMAP_CACHE_DIR": str(StackLayout.from_env(os.environ).cache),
        "TPMAP_KAFKA_PORT": str(kafka_port),
        "TPMAP_KAFKA_CONTROLLER_PORT": str(controller_port),
        "TPMAP_PG_PORT": str(postgres_port),
    }
    layout = StackLayout.from_env(env)
    try:
        first = _deploy(env, "up", "--infra-only")
        assert first.returncode == 0, first.stdout + first.stderr
        kafka_pid, postgres_pid = _server_pids(layout)
        assert kafka_pid is not None
        assert postgres_pid is not None
        assert f"KAFKA_BOOTSTRAP_SERVERS={HOST}:{kafka_port}\n" in layout.env_file.read_text()
        assert layout.env_file.stat().st_mode & 0o777 == 0o600
        assert layout.credentials_file.stat().st_mode & 0o777 == 0o600

        again = _deploy(env, "up", "--infra-only")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"kafka: already running (pid {kafka_pid})" in again.stdout
        assert f"postgres: already running (pid {postgres_pid})" in again.stdout
        assert _server_pids(layout) == (kafka_pid, postgres_pid)

        admin = KafkaAdminClient(bootstrap_servers=f"{HOST}:{kafka_port}")
        try:
            names = [spec.name for spec in TOPICS]
            described = {topic["name"]: topic for topic in admin.describe_topics(names)}
            configs = admin.describe_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, name, ["cleanup.policy"])
                    for name in names
                ],
                config_filter="all",
            )["topic"]
        finally:
            admin.close()
        for spec in TOPICS:
            assert described[spec.name]["error_code"] == 0, spec.name
            assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name
            assert configs[spec.name]["cleanup.policy"]["value"] == spec.cleanup_policy, spec.name
    finally:
        down = _deploy(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _pid_is_gone(kafka_pid)
    assert _pid_is_gone(postgres_pid)
    for port in (kafka_port, controller_port, postgres_port):
        assert not port_is_open(port), port
    assert _server_pids(layout) == (None, None)
