"""The local stack's pure logic: port choice, topic plan, rendered files. No processes, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.connection_files import Endpoints, merge_credentials, render_env_file
from deploy.local.kafka_config import (
    BrokerConfig,
    java_major_version,
    kafka_version,
    new_cluster_id,
    render_server_properties,
)
from deploy.local.layout import KAFKA_POM
from deploy.local.ports import PortChoice, PortError, PortRequest, choose_port
from deploy.local.postgres_config import can_traverse, newest_first, render_settings
from deploy.local.processes import parse_proc_stat
from deploy.local.topics import plan_topics
from services.contracts.topics import TopicSpec

BUSY = {19092}


def _choose(request: PortRequest, env: dict[str, str] | None = None) -> PortChoice:
    return choose_port(
        request, env or {}, is_free=lambda port: port not in BUSY, any_free=lambda: 40001
    )


def _request(*, remembered: int | None = None, running: bool = False) -> PortRequest:
    return PortRequest("kafka", "TPMAP_KAFKA_PORT", 19092, remembered, running)


def test_a_free_default_is_taken_as_it_is() -> None:
    assert _choose(PortRequest("postgres", "TPMAP_PG_PORT", 15432, None, False)) == PortChoice(
        15432
    )


def test_a_default_taken_by_another_program_gives_way_to_a_free_port() -> None:
    choice = _choose(_request())
    assert choice.port == 40001
    assert choice.note is not None
    assert "19092" in choice.note


def test_a_remembered_port_wins_over_the_default() -> None:
    assert _choose(_request(remembered=30000)) == PortChoice(30000)


def test_a_running_server_keeps_its_port_even_if_it_looks_busy() -> None:
    assert _choose(_request(remembered=19092, running=True)) == PortChoice(19092)


def test_a_configured_port_is_used_and_must_be_free() -> None:
    assert _choose(_request(remembered=30000), {"TPMAP_KAFKA_PORT": "31000"}) == PortChoice(31000)
    with pytest.raises(PortError, match="in use"):
        _choose(_request(), {"TPMAP_KAFKA_PORT": "19092"})
    with pytest.raises(PortError, match="not a TCP port"):
        _choose(_request(), {"TPMAP_KAFKA_PORT": "kafka"})


def test_a_running_server_cannot_be_moved_by_configuration() -> None:
    with pytest.raises(PortError, match="already running"):
        _choose(_request(remembered=30000, running=True), {"TPMAP_KAFKA_PORT": "31000"})


def test_topic_plan_creates_missing_topics_and_only_ever_adds_partitions() -> None:
    registry = [TopicSpec("a", "k", "d", partitions=6), TopicSpec("b", "k", "d", partitions=6)]
    registry.append(TopicSpec("c", "k", "d", partitions=2))
    plan = plan_topics(registry, {"b": 3, "c": 4, "stray": 1})
    assert [spec.name for spec in plan.create] == ["a"]
    assert plan.grow == {"b": 6}
    assert plan_topics(registry, {"a": 6, "b": 6, "c": 2}).summary(3) == "topics: 3 ready"


def test_credentials_keep_sections_written_by_others() -> None:
    endpoints = Endpoints(19092, 15432, "pw")  # ports, password
    existing = {"ingest": {"api_key": "x"}, "kafka": {"bootstrap_servers": "old:1"}}
    merged = merge_credentials(existing, endpoints)
    assert merged["ingest"] == {"api_key": "x"}
    assert merged["kafka"] == {"bootstrap_servers": "127.0.0.1:19092"}
    assert merged["postgres"]["url"] == "postgresql://tpmap:pw@127.0.0.1:15432/tpmap"
    assert "DATABASE_URL=postgresql://tpmap:pw@127.0.0.1:15432/tpmap\n" in render_env_file(
        endpoints
    )


def test_broker_settings_for_a_single_loopback_node() -> None:
    text = render_server_properties(BrokerConfig(19092, 19093, Path("/data")))
    settings = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert settings["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert settings["auto.create.topics.enable"] == "false"
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["offsets.topic.replication.factor"] == "1"


def test_kafka_version_comes_from_the_committed_pom() -> None:
    assert kafka_version(KAFKA_POM.read_text(encoding="utf-8")).startswith("4.1.")


def test_cluster_ids_look_like_kafkas() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ("bash: java: command not found", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


def test_proc_stat_survives_odd_command_names() -> None:
    fields = " ".join(["S", *[str(n) for n in range(4, 22)], "987654", "0"])
    assert parse_proc_stat(f"123 (a) b (c)) {fields}") == ("S", 987654)


def test_postgres_settings_listen_on_loopback_with_the_socket_in_the_data_folder() -> None:
    text = render_settings(15432, Path("/it's/data"))
    assert "listen_addresses = '127.0.0.1'" in text
    assert "unix_socket_directories = '/it''s/data'" in text


def test_debian_binaries_newest_major_first() -> None:
    found = [Path(f"/usr/lib/postgresql/{major}/bin") for major in ("9", "16", "15")]
    assert [p.parent.name for p in newest_first(found)] == ["16", "15", "9"]


def test_folder_traversal_by_owner_group_and_others() -> None:
    assert not can_traverse(0o700, owner=0, group=0, uid=101, gids={104})
    assert can_traverse(0o755, owner=0, group=0, uid=101, gids={104})
    assert can_traverse(0o710, owner=0, group=104, uid=101, gids={104})
    assert can_traverse(0o700, owner=101, group=104, uid=101, gids={104})
