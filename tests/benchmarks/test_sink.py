"""The benchmark sink: answers 202 with a tracking id, counts bodies, stops with its block."""

from __future__ import annotations

import time

import httpx

from benchmarks import sink as sink_module


def test_sink_answers_each_keep_alive_post_with_a_distinct_tracking_id() -> None:
    with sink_module.running_sink() as sink, httpx.Client(base_url=sink.url) as client:
        first = client.post("/users/batch", content=b"x" * 300_000)
        second = client.post("/users/batch", content=b"{}")
        stats = sink.stats()
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["trackingId"] != second.json()["trackingId"]
    assert stats["requests"] == 2
    assert stats["body_bytes"] == 300_002


def test_sink_delays_each_response_by_delay_ms() -> None:
    with sink_module.running_sink(delay_ms=50) as sink, httpx.Client(base_url=sink.url) as client:
        started = time.perf_counter()
        response = client.post("/users/batch", content=b"{}")
        elapsed = time.perf_counter() - started
    assert response.status_code == 202
    assert elapsed >= 0.045  # a lower bound: the delay can only be late, never early


def test_sink_process_is_gone_when_the_block_ends() -> None:
    with sink_module.running_sink() as sink:
        process = sink.process
        assert process.poll() is None
    assert process.poll() is not None
