"""Where the local stack keeps its files, derived from the repository or from TPMAP_HOME."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# deploy/local/layout.py -> the repository top.
REPO_ROOT = Path(__file__).resolve().parents[2]
# Committed files the broker is started with.
KAFKA_POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
KAFKA_LOG4J_CONFIG = Path(__file__).resolve().parent / "kafka" / "log4j2.properties"

HOME_ENV = "TPMAP_HOME"
CACHE_ENV = "TPMAP_CACHE_DIR"


@dataclass(frozen=True, slots=True)
class StackLayout:
    """The folders and files of one stack; two layouts with different homes never share state.

    `repo` is the source tree the services are run from; `home` holds `.local/` (state, data,
    logs) and, unless `cache` is set apart, `.cache/` (downloaded jars, shareable between homes).
    """

    repo: Path
    home: Path
    cache: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackLayout:
        home = Path(env[HOME_ENV]).resolve() if env.get(HOME_ENV) else REPO_ROOT
        cache = Path(env[CACHE_ENV]).resolve() if env.get(CACHE_ENV) else home / ".cache"
        return cls(repo=REPO_ROOT, home=home, cache=cache)

    @property
    def local(self) -> Path:
        return self.home / ".local"

    @property
    def logs(self) -> Path:
        return self.local / "logs"

    @property
    def run(self) -> Path:
        """Pid files of the processes this stack started."""
        return self.local / "run"

    @property
    def state_file(self) -> Path:
        return self.local / "stack.json"

    @property
    def env_file(self) -> Path:
        return self.local / "stack.env"

    @property
    def credentials_file(self) -> Path:
        return self.local / "credentials.json"

    @property
    def kafka_config(self) -> Path:
        return self.local / "kafka" / "server.properties"

    @property
    def kafka_data(self) -> Path:
        return self.local / "kafka" / "data"

    @property
    def postgres_data(self) -> Path:
        """The preferred data folder; see postgres_cluster.data_folder for the fallback."""
        return self.local / "postgres"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def kafka_libs(self, version: str) -> Path:
        return self.cache / "kafka" / version / "libs"
