"""A Kafka broker and a PostgreSQL cluster of a test's own, so that stopping or filling them
disturbs no other test. They run from the session stack's jars and binaries, on free ports, in a
temporary folder."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from deploy.local import kafka_broker, postgres_cluster
from deploy.local.kafka_config import BrokerConfig
from deploy.local.layout import REPO_ROOT, StackLayout
from deploy.local.ports import any_free_port
from deploy.local.topics import ensure_topics


class DisposableBroker:
    """A broker on free ports in `home`, with every topic of the registry."""

    def __init__(self, home: Path) -> None:
        shared_cache = StackLayout.from_env(os.environ).cache  # jars already downloaded
        self.layout = StackLayout(repo=REPO_ROOT, home=home, cache=shared_cache)
        self.config = BrokerConfig(any_free_port(), any_free_port(), self.layout.kafka_data)
        self.bootstrap = f"127.0.0.1:{self.config.port}"
        self._launcher = kafka_broker.launcher(
            self.layout, kafka_broker.find_java(os.environ), kafka_broker.ensure_jars(self.layout)
        )

    def start(self) -> None:
        for folder in (self.layout.logs, self.layout.run):
            folder.mkdir(parents=True, exist_ok=True)
        kafka_broker.start(self.layout, self._launcher, self.config, os.environ)
        kafka_broker.wait_ready(self.layout, self.config.port)
        ensure_topics(self.bootstrap)

    def stop(self) -> None:
        kafka_broker.stop(self.layout)


class DisposablePostgres:
    """A PostgreSQL cluster of a test's own on a free port, so stopping it disturbs no other
    test: the same binaries and setup as the local stack's (deploy/local/postgres_cluster.py)."""

    def __init__(self, home: Path) -> None:
        layout = StackLayout(repo=REPO_ROOT, home=home, cache=home / ".cache")
        user = postgres_cluster.server_user(create=True)
        self.cluster = postgres_cluster.Cluster(
            bindir=postgres_cluster.require_bindir(os.environ),
            data=postgres_cluster.data_folder(layout, user),
            user=user,
        )
        self.port = any_free_port()
        self.password = uuid.uuid4().hex
        self.log = home / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://tpmap:{self.password}@127.0.0.1:{self.port}/tpmap"

    def start(self) -> None:
        if not (self.cluster.data / "PG_VERSION").exists():
            postgres_cluster.initialise(self.cluster, self.password)
        postgres_cluster.configure(self.cluster, self.port)
        postgres_cluster.start(self.cluster, self.log)
        postgres_cluster.wait_ready(self.cluster, self.port)
        postgres_cluster.ensure_database(self.cluster, self.port, self.password)

    def stop(self) -> None:
        postgres_cluster.stop(self.cluster)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.cluster.data, ignore_errors=True)
