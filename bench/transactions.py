#!/usr/bin/env python3
"""Transactional vs plain produce: throughput and commit latency with confluent-kafka
(librdkafka) against one Strata broker.

    .venv/bin/python bench/transactions.py                  # starts its own broker (target/release/strata)
    .venv/bin/python bench/transactions.py --bootstrap H:P  # an already running broker
    .venv/bin/python bench/transactions.py --seconds 15 --json out.json

Each row produces 1 KiB records (--record-bytes) with acks=all to a topic of 8 partitions
(--partitions) for --seconds from one producer:

- plain: an idempotent producer (enable.idempotence=true), flushed at the end;
- transactional, N per commit: the same producer with a transactional.id, committing a
  transaction every N records (begin_transaction, N produce() calls, commit_transaction). A
  commit flushes the transaction's records, then EndTxn writes a marker to every partition.

Reported: records/s and MB/s (records acknowledged and, for transactions, committed), and for
transactional rows the commit_transaction() latency p50/p99. The client runs on the same
machine as the broker, so the numbers include its CPU use; compare rows with each other.
The broker is started like bench/groups.py starts it (a copy of the binary, data under
target/bench-data/transactions, removed afterwards unless --keep-data).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from confluent_kafka import KafkaException, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from groups import ROOT, Broker, create_topic, log, machine, pct  # noqa: E402


def run(bootstrap: str, topic: str, seconds: float, record_bytes: int, per_commit: int | None,
        row: str) -> dict:
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "batch.size": 1 << 20, "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1 << 20}
    if per_commit is not None:
        conf["transactional.id"] = f"bench-{row}-{time.time_ns()}"
    p = Producer(conf)
    delivered = [0]
    failed = [0]

    def on_delivery(err, _msg):
        if err is None:
            delivered[0] += 1
        else:
            failed[0] += 1

    if per_commit is not None:
        p.init_transactions(30)
    payload = b"x" * record_bytes
    commits_ms: list[float] = []
    sent = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        if per_commit is not None:
            p.begin_transaction()
        n = per_commit or 10_000
        for i in range(n):
            while True:
                try:
                    p.produce(topic, payload, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.005)
            sent += 1
            if i % 1_000 == 0:
                p.poll(0)
        if per_commit is not None:
            t = time.monotonic()
            p.commit_transaction(60)
            commits_ms.append((time.monotonic() - t) * 1000)
    p.flush(60)
    elapsed = time.monotonic() - start
    if failed[0]:
        raise SystemExit(f"{row}: {failed[0]} records failed")
    s = sorted(commits_ms)
    return {"row": row, "per_commit": per_commit, "records": delivered[0], "seconds": elapsed,
            "records_per_s": delivered[0] / elapsed,
            "mb_per_s": delivered[0] * record_bytes / elapsed / 1e6,
            "commits": len(s), "commit_p50_ms": pct(s, 50) if s else None,
            "commit_p99_ms": pct(s, 99) if s else None}


def report(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Transactional vs plain produce — {m['date_utc']}", "",
             f"machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, load average at start "
             f"{m['loadavg']}; client confluent-kafka {m['confluent_kafka']} / librdkafka {m['librdkafka']}; "
             f"broker {res.get('broker', 'external')}; {res['partitions']} partitions, "
             f"{res['record_bytes']} B records, acks=all, {res['seconds']:g} s per row", "",
             "| producer | records/s | MB/s | vs plain | commits | commit p50 ms | commit p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    plain = res["rows"][0]["records_per_s"]
    for r in res["rows"]:
        p50 = f"{r['commit_p50_ms']:.1f}" if r["commit_p50_ms"] is not None else "–"
        p99 = f"{r['commit_p99_ms']:.1f}" if r["commit_p99_ms"] is not None else "–"
        lines.append(f"| {r['row']} | {r['records_per_s']:,.0f} | {r['mb_per_s']:.1f} | "
                     f"{r['records_per_s'] / plain:.0%} | {r['commits']:,} | {p50} | {p99} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", help="use this running broker instead of starting one")
    ap.add_argument("--strata-bin", default=str(ROOT / "target/release/strata"))
    ap.add_argument("--broker-arg", action="append", default=[], help="extra `strata serve` flag (repeatable)")
    ap.add_argument("--data-root", default=str(ROOT / "target/bench-data/transactions"))
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--record-bytes", type=int, default=1024)
    ap.add_argument("--per-commit", default="100,1000,10000",
                    help="comma list: records per transaction, one row each")
    ap.add_argument("--json")
    args = ap.parse_args()

    broker = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        broker = Broker(Path(args.strata_bin), Path(args.data_root), args.broker_arg)
        bootstrap = broker.bootstrap
    res = {"machine": machine(), "partitions": args.partitions, "record_bytes": args.record_bytes,
           "seconds": args.seconds, "rows": []}
    if broker:
        res["broker"] = f"sha256 {broker.sha} {' '.join(args.broker_arg)}".strip()
    try:
        rows = [("plain (idempotent)", None)] + [
            (f"transactional, {int(n):,} per commit", int(n)) for n in args.per_commit.split(",")]
        for i, (row, per_commit) in enumerate(rows):
            topic = f"bench-txn-{i}-{time.time_ns()}"
            create_topic(bootstrap, topic, args.partitions)
            log(f"{row} ...")
            res["rows"].append(run(bootstrap, topic, args.seconds, args.record_bytes, per_commit, row))
    except KafkaException as e:
        raise SystemExit(f"benchmark failed: {e}")
    finally:
        if broker:
            broker.stop()
            if not args.keep_data:
                shutil.rmtree(broker.dir, ignore_errors=True)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
