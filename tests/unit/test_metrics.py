"""Prometheus text exposition of the master's metrics."""

from __future__ import annotations

import pytest

from master.metrics import Metrics


async def test_counter_gauge_histogram_render() -> None:
    """Each kind renders HELP, TYPE and its samples, labels escaped."""
    m = Metrics()
    jobs = m.counter("jobs_total", "Jobs by outcome.", ["outcome"])
    jobs.inc(1, "passed")
    jobs.inc(2, 'we"ird')
    depth = m.gauge("queue_depth", "Queued jobs.")
    depth.set(7)
    lat = m.histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0))
    lat.observe(0.05)
    lat.observe(0.5)
    lat.observe(5)
    text = await m.render()
    assert "# TYPE pyti_jobs_total counter" in text
    assert 'pyti_jobs_total{outcome="passed"} 1' in text
    assert 'pyti_jobs_total{outcome="we\\"ird"} 2' in text
    assert "pyti_queue_depth 7" in text
    assert 'pyti_latency_seconds_bucket{le="0.1"} 1' in text
    assert 'pyti_latency_seconds_bucket{le="1"} 2' in text
    assert 'pyti_latency_seconds_bucket{le="+Inf"} 3' in text
    assert "pyti_latency_seconds_count 3" in text
    assert text.endswith("\n")


async def test_collectors_run_before_render() -> None:
    """A collector sets gauges from elsewhere just before rendering."""
    m = Metrics()
    g = m.gauge("slaves_connected", "Slaves.")

    async def collect() -> None:
        g.set(3)

    m.add_collector(collect)
    assert "pyti_slaves_connected 3" in await m.render()


def test_wrong_labels_and_negative_counts_are_refused() -> None:
    """Label arity is checked and counters never go down."""
    m = Metrics()
    c = m.counter("x_total", "X.", ["a"])
    with pytest.raises(ValueError, match="labels"):
        c.inc(1)
    with pytest.raises(ValueError, match="only goes up"):
        c.inc(-1, "v")
    assert m.counter("x_total", "X.", ["a"]) is c
    with pytest.raises(ValueError, match="differently"):
        m.gauge("x_total", "X.")
