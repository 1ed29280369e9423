"""The local Kafka broker's processes: Java check, jars from Maven Central, format, start, stop."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from deploy.local import processes
from deploy.local.errors import StackError
from deploy.local.kafka_config import (
    MIN_JAVA,
    BrokerConfig,
    JavaLauncher,
    java_major_version,
    kafka_version,
    new_cluster_id,
    render_server_properties,
)
from deploy.local.layout import KAFKA_LOG4J_CONFIG, KAFKA_POM, StackLayout
from deploy.local.ports import HOST, port_is_open

NAME = "kafka"
# A controlled shutdown of one node takes a second or two; past this it is stuck.
STOP_GRACE_SECONDS = 30
# A cold JVM on 2 busy cores: usually 5-10 s.
READY_TIMEOUT_SECONDS = 120


def find_java(env: Mapping[str, str]) -> str:
    """The java executable (JAVA_HOME's, else PATH's), checked to be Java 17 or newer."""
    java_home = env.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise StackError(
            f"{NAME}: Java {MIN_JAVA}+ is required and no `java` was found "
            "(Debian: apt-get install openjdk-17-jdk-headless)"
        )
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    major = java_major_version(probe.stderr + probe.stdout)
    if major is None or major < MIN_JAVA:
        raise StackError(
            f"{NAME}: Java {MIN_JAVA}+ is required, {java} is "
            f"{major if major is not None else 'of unknown version'}"
        )
    return java


def ensure_jars(layout: StackLayout) -> Path:
    """The folder of the broker's jars, resolved from Maven Central on the first run only."""
    version = kafka_version(KAFKA_POM.read_text(encoding="utf-8"))
    libs = layout.kafka_libs(version)
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"{NAME}: Maven (`mvn`) is needed once to fetch Kafka's jars "
            "(Debian: apt-get install maven)"
        )
    print(f"{NAME}: resolving Kafka {version} jars from Maven Central (first run only)…")
    # Copied into a side folder and renamed when complete: an interrupted copy is redone.
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(KAFKA_POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"{NAME}: Maven could not fetch the jars:\n{result.stdout}{result.stderr}")
    partial.replace(libs)
    return libs


def launcher(layout: StackLayout, java: str, libs: Path) -> JavaLauncher:
    return JavaLauncher(java=java, libs=libs, log4j_config=KAFKA_LOG4J_CONFIG, logs_dir=layout.logs)


def running_pid(layout: StackLayout) -> int | None:
    return processes.running_pid(layout.pid_file(NAME))


def start(
    layout: StackLayout, java: JavaLauncher, config: BrokerConfig, env: Mapping[str, str]
) -> int:
    """Format the log folder if it is new, then start the broker in the background."""
    layout.kafka_config.parent.mkdir(parents=True, exist_ok=True)
    layout.kafka_config.write_text(render_server_properties(config), encoding="utf-8")
    # meta.properties is what `format` writes: its presence means this folder holds a cluster.
    if not (config.data_dir / "meta.properties").exists():
        result = subprocess.run(
            java.format_command(layout.kafka_config, new_cluster_id()),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"{NAME}: formatting {config.data_dir} failed:\n{result.stdout}{result.stderr}"
            )
    return processes.spawn(
        java.broker_command(layout.kafka_config),
        pid_file=layout.pid_file(NAME),
        log_file=layout.logs / "kafka.out",
        cwd=layout.home,
        env=env,
    )


def answers(bootstrap: str) -> bool:
    """True when the broker at `bootstrap` answers a metadata request and lists itself."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, bootstrap_timeout_ms=2000, request_timeout_ms=5000
        )
    except KafkaError:
        return False
    try:
        cluster = admin.describe_cluster()
    except KafkaError:
        return False
    finally:
        admin.close()
    return bool(cluster.get("brokers"))


def wait_ready(layout: StackLayout, port: int) -> None:
    bootstrap = f"{HOST}:{port}"

    def ready() -> bool:
        if running_pid(layout) is None:
            raise StackError(
                f"{NAME}: the broker exited while starting; last lines of its logs:\n"
                f"{processes.tail(layout.logs / 'kafka.out')}\n"
                f"{processes.tail(layout.log_file('kafka'))}"
            )
        # A kafka-python client that fails to bootstrap leaves its IO thread behind: only
        # ask once the port accepts connections.
        return port_is_open(port) and answers(bootstrap)

    if not processes.wait_until(ready, READY_TIMEOUT_SECONDS, interval=0.5):
        raise StackError(
            f"{NAME}: no answer on {bootstrap} after {READY_TIMEOUT_SECONDS} s; see "
            f"{layout.log_file('kafka')}"
        )


def stop(layout: StackLayout) -> bool:
    return processes.stop(layout.pid_file(NAME), grace_seconds=STOP_GRACE_SECONDS)
