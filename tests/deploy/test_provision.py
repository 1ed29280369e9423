"""The deployment's small commands without a broker: the provisioning retry loop, and the health
probe against an HTTP server of the test's own on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from kafka.errors import KafkaTimeoutError

from deploy import probe
from deploy.provision import RETRY_SECONDS, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_retries_kafka_errors_and_reasons_until_done() -> None:
    clock = FakeClock()
    answers: list[Exception | str | None] = [KafkaTimeoutError(), "topics missing", None]

    def attempt() -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_until(attempt, 60, sleep=clock.sleep, clock=clock) is None
    assert clock.sleeps == [RETRY_SECONDS, RETRY_SECONDS]


def test_wait_until_gives_up_with_the_last_reason() -> None:
    clock = FakeClock()
    reason = wait_until(lambda: "topics missing", 5, sleep=clock.sleep, clock=clock)
    assert reason == "topics missing"
    assert clock.now >= 5


def test_wait_until_does_not_retry_other_errors() -> None:
    clock = FakeClock()

    def attempt() -> str | None:
        raise ValueError("a bug, not a broker that is starting")

    with pytest.raises(ValueError, match="a bug"):
        wait_until(attempt, 60, sleep=clock.sleep, clock=clock)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_exits_0_on_2xx_and_1_otherwise(server_url: str) -> None:
    assert probe.main([f"{server_url}/readyz"]) == 0
    assert probe.main([f"{server_url}/other"]) == 1


def test_probe_exits_1_when_nothing_listens() -> None:
    with HTTPServer(("127.0.0.1", 0), _Handler) as closed:
        port = closed.server_port
    assert probe.main([f"http://127.0.0.1:{port}/healthz"]) == 1


def test_probe_refuses_anything_but_one_http_url() -> None:
    assert probe.main([]) == 2
    assert probe.main(["file:///etc/passwd"]) == 2
