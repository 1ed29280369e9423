"""Pure parts of the local broker: its version, its server.properties, its command line."""

from __future__ import annotations

import base64
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from deploy.local.ports import HOST

MIN_JAVA = 17
NODE_ID = 1
# Kafka's own default heap (KAFKA_HEAP_OPTS): enough for one node and a demo population.
HEAP = "1g"

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_version(pom_text: str) -> str:
    """The kafka.version property of deploy/local/kafka/pom.xml."""
    node = ET.fromstring(pom_text).find("m:properties/m:kafka.version", _POM_NS)  # noqa: S314 (our own file)
    if node is None or not node.text:
        raise ValueError("pom.xml has no <kafka.version> property")
    return node.text.strip()


def java_major_version(version_output: str) -> int | None:
    """17 from `openjdk version "17.0.15"`, 8 from `java version "1.8.0_292"`."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def new_cluster_id() -> str:
    """A cluster ID as Kafka makes them: a random UUID, URL-safe base64 without padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka avoids IDs that start with '-', which command lines would read as an option.
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    port: int
    controller_port: int
    data_dir: Path


def render_server_properties(config: BrokerConfig) -> str:
    settings = {
        # One JVM is both broker and KRaft controller.
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        # A static voter set (not a --standalone dynamic quorum): the controller's address is
        # read from this file on every start, so a later `up` may move it to another port.
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{config.controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{config.port},CONTROLLER://{HOST}:{config.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{config.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(config.data_dir),
        # A single node can hold one replica of anything, internal topics included.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Nobody else is going to join a group on a dev box: don't wait 3 s for them.
        "group.initial.rebalance.delay.ms": "0",
        # Topics come from the registry (services/contracts/topics.py); a typo in a topic name
        # must fail, not create a stray topic. Faust creates its internal topics by admin call.
        "auto.create.topics.enable": "false",
        # Fewer threads than the server defaults: 2 cores are shared with PostgreSQL and services.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.partitions": "1",
    }
    lines = ["# Written by `python -m deploy.local up` on every start; edit kafka_config.py."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class JavaLauncher:
    """How the broker's JVMs are started: which java, which jars, where they log."""

    java: str
    libs: Path
    log4j_config: Path
    logs_dir: Path

    def broker_command(self, properties: Path) -> list[str]:
        return [
            *self._java_with_classpath(),
            f"-Xms{HEAP}",
            f"-Xmx{HEAP}",
            # The collector and pause target of Kafka's own start scripts.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "kafka.Kafka",
            str(properties),
        ]

    def format_command(self, properties: Path, cluster_id: str) -> list[str]:
        return [
            *self._java_with_classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(properties),
        ]

    def _java_with_classpath(self) -> list[str]:
        return [
            self.java,
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            # The JVM expands the trailing '*' to every jar of the folder itself.
            "-cp",
            f"{self.libs}/*",
        ]
