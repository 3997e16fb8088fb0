"""Debian's kcat 1.7.1 (librdkafka 2.0.2): an old, widely deployed client, unchanged.

For every compression codec: 100,000 keyed records with headers in, all of them back out,
same keys/values/headers, per-partition offsets dense from 0 and values in produce order.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections import defaultdict

import pytest

from helpers import unique_topic

N_RECORDS = 100_000
PARTITIONS = 3
HEADERS = [("trace", "e2e-kcat"), ("origin", "strata-test")]
KCAT = shutil.which("kcat")
SEEDS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def kb(module_strata_factory):
    # Topics here are created by kcat's own Metadata request (auto-create), with 3 partitions.
    return module_strata_factory("--num-partitions", PARTITIONS, name="kcat")


def kcat(*args, input_path=None, timeout=180, check=True) -> subprocess.CompletedProcess:
    cmd = [KCAT, *map(str, args)]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstderr:\n"
                             f"{p.stderr.decode(errors='replace')[-3000:]}")
    return p


def make_records(n: int, seed: int) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]
    recs = []
    for i in range(n):
        key = f"key-{rnd.randrange(997)}"
        body = " ".join(rnd.choice(words) for _ in range(rnd.randrange(1, 30)))
        # a little incompressible noise too
        noise = "".join(rnd.choice("0123456789abcdef") for _ in range(rnd.randrange(0, 24)))
        recs.append((key, f"{i:06d}#{body}#{noise}"))
    return recs


FMT = r"P=%p|O=%o|K=%k|H=%h|V=%s\n"


def parse_consumed(out: bytes) -> list[tuple[int, int, str, str, str]]:
    rows = []
    for line in out.decode().split("\n"):
        if not line:
            continue
        p, o, k, h, v = line.split("|", 4)
        assert p.startswith("P=") and o.startswith("O=") and k.startswith("K=") and h.startswith("H=") \
            and v.startswith("V="), line
        rows.append((int(p[2:]), int(o[2:]), k[2:], h[2:], v[2:]))
    return rows


def metadata(bootstrap: str, topic: str | None = None) -> dict:
    args = ["-L", "-J", "-b", bootstrap, "-m", 10]
    if topic:
        args += ["-t", topic]
    return json.loads(kcat(*args, timeout=60).stdout)


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_roundtrip_100k(kb, tmp_path, codec):
    topic = unique_topic(f"kcat-{codec}")
    recs = make_records(N_RECORDS, seed=SEEDS[codec])
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{k}:{v}\n" for k, v in recs))

    hdr_args = []
    for hk, hv in HEADERS:
        hdr_args += ["-H", f"{hk}={hv}"]
    kcat("-P", "-b", kb.bootstrap, "-t", topic, "-K:", *hdr_args, "-z", codec,
         "-X", "acks=all", "-X", "linger.ms=20", "-X", "message.timeout.ms=120000",
         "-m", 30, "-l", str(src), timeout=300)

    out = kcat("-C", "-b", kb.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
               "-m", 30, "-f", FMT, timeout=300).stdout
    rows = parse_consumed(out)
    kb.assert_alive()

    # Exactly the records produced: no loss, no duplicates.
    assert len(rows) == N_RECORDS, f"consumed {len(rows)} records, produced {N_RECORDS}"
    want_by_value = {v: k for k, v in recs}
    got_values = [r[4] for r in rows]
    assert len(set(got_values)) == N_RECORDS, "duplicate values read back"
    assert set(got_values) == set(want_by_value), "values read back differ from values produced"

    # Keys and headers intact.
    want_headers = ",".join(f"{hk}={hv}" for hk, hv in HEADERS)
    bad = [r for r in rows if r[2] != want_by_value[r[4]] or r[3] != want_headers]
    assert not bad, f"{len(bad)} records with wrong key/headers, e.g. {bad[:3]}"

    # Per partition: offsets dense from 0, values in produce order, each key in one partition.
    by_part = defaultdict(list)
    for p, o, k, h, v in rows:
        by_part[p].append((o, int(v.split("#", 1)[0]), k))
    assert set(by_part) <= set(range(PARTITIONS)), sorted(by_part)
    assert len(by_part) == PARTITIONS, f"records only in partitions {sorted(by_part)}"
    key_part = {}
    for p, items in by_part.items():
        offsets = [o for o, _, _ in items]
        assert offsets == list(range(len(items))), \
            f"partition {p}: offsets not dense from 0 (first gap near {_first_gap(offsets)})"
        seqs = [s for _, s, _ in items]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), f"partition {p}: values out of produce order"
        for _, _, k in items:
            assert key_part.setdefault(k, p) == p, f"key {k} in partitions {key_part[k]} and {p}"

    # Random access into the middle of (compressed) batches, and relative-from-end.
    p0 = by_part[0]
    mid = len(p0) // 2 + 7
    part = parse_consumed(kcat("-C", "-b", kb.bootstrap, "-t", topic, "-p", 0, "-o", mid,
                               "-c", 25, "-e", "-q", "-f", FMT, timeout=60).stdout)
    assert [(r[1], int(r[4].split("#")[0])) for r in part] == [(o, s) for o, s, _ in p0[mid:mid + 25]]
    tail = parse_consumed(kcat("-C", "-b", kb.bootstrap, "-t", topic, "-p", 1, "-o", -10,
                               "-e", "-q", "-f", FMT, timeout=60).stdout)
    p1 = by_part[1]
    assert [r[1] for r in tail] == [o for o, _, _ in p1[-10:]]


def _first_gap(offsets):
    for i, o in enumerate(offsets):
        if o != i:
            return i
    return None


def test_kcat_metadata_listing(kb):
    topic = unique_topic("kcat-md")
    # Produce one record so the topic exists (auto-create through Metadata).
    p = subprocess.run([KCAT, "-P", "-b", kb.bootstrap, "-t", topic, "-K:", "-m", "30"],
                       input=b"k:v\n", capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")

    md = metadata(kb.bootstrap)
    brokers = md["brokers"]
    assert len(brokers) == 1, brokers
    assert brokers[0]["name"] == kb.bootstrap, f"advertised {brokers[0]['name']}, expected {kb.bootstrap}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, f"{topic} not listed: {sorted(topics)}"
    t = topics[topic]
    assert "error" not in t, t
    parts = sorted(t["partitions"], key=lambda x: x["partition"])
    assert [x["partition"] for x in parts] == list(range(PARTITIONS))
    for x in parts:
        assert x["leader"] == brokers[0]["id"], x
        assert [r["id"] for r in x["replicas"]] == [brokers[0]["id"]], x
        assert [r["id"] for r in x["isrs"]] == [brokers[0]["id"]], x

    # The human-readable listing names the broker and the topic too.
    text = kcat("-L", "-b", kb.bootstrap, "-t", topic, "-m", 10).stdout.decode()
    assert f"at {kb.bootstrap}" in text, text
    assert f'topic "{topic}" with {PARTITIONS} partitions' in text, text

