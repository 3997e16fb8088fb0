"""The admin HTTP endpoints and process lifecycle (signals, restart on the same data dir)."""

from __future__ import annotations

import signal

import pytest

from conftest import http_get
from helpers import consume_partitions, create_topic, produce_all, unique_topic


def test_healthz_and_metrics(broker):
    status, body = http_get(broker.admin_url + "/healthz")
    assert (status, body.strip()) == (200, b"ok")
    # Some traffic first, so request metrics have something to count.
    topic = unique_topic("lc-metrics")
    create_topic(broker.bootstrap, topic)
    produce_all(broker.bootstrap, topic, [{"value": b"m"}])
    status, body = http_get(broker.admin_url + "/metrics")
    assert status == 200
    text = body.decode()
    samples = [l for l in text.splitlines() if l and not l.startswith("#")]
    assert any(l.startswith("# TYPE ") for l in text.splitlines()), text[:500]
    assert samples, "no samples in /metrics"
    for l in samples:  # Prometheus text format: name{labels} value
        name_labels, _, value = l.rpartition(" ")
        assert name_labels, l
        float(value)  # a number (NaN/+Inf parse too); raises on anything else
    # Timings are Prometheus histograms: cumulative buckets ending in +Inf, which equals the
    # count. The produce above was answered, so Produce has at least one request.
    assert "# TYPE strata_request_seconds histogram" in text, text[:2000]
    assert "# TYPE strata_wal_sync_seconds histogram" in text
    produce = [l for l in samples if l.startswith('strata_request_seconds_bucket{api="Produce"')]
    counts = [float(l.rpartition(" ")[2]) for l in produce]
    assert produce and counts == sorted(counts), produce
    assert produce[-1].startswith('strata_request_seconds_bucket{api="Produce",le="+Inf"}')
    total = [l for l in samples if l.startswith('strata_request_seconds_count{api="Produce"}')]
    assert len(total) == 1 and float(total[0].rpartition(" ")[2]) == counts[-1] >= 1, total
    status, _ = http_get(broker.admin_url + "/no-such-page")
    assert status == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_keeps_data(strata_factory, sig):
    b = strata_factory()
    topic = unique_topic("lc-sig")
    create_topic(b.bootstrap, topic, partitions=2)
    recs = [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(1000)]
    reps = produce_all(b.bootstrap, topic, recs)
    assert all(r.error is None for r in reps)
    b.proc.send_signal(sig)
    rc = b.proc.wait(30)
    assert rc == 0, f"exit code {rc} after {sig.name}"
    b.start()
    got = consume_partitions(b.bootstrap, topic, [0, 1])
    for p in (0, 1):
        assert [m.value() for m in got[p]] == [r["value"] for r in recs if r["partition"] == p]
