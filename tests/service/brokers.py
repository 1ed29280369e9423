"""A Kafka broker of a test's own, so that stopping it or filling its topics disturbs no other
test. It runs from the same jars as the session's stack, on free ports, in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

from deploy.local import kafka_broker
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
