#!/usr/bin/env python3
"""Turns one bench/run.sh results directory into a Markdown summary (stdout).

    python3 bench/report.py bench/results/<run>

MB = 10^6 bytes throughout (fio's and iperf3's numbers are converted to the same unit).
"""
import json
import os
import re
import sys

PHASES = ["tput", "lat50", "lat25", "lat10", "e2e", "catchup", "catchup_restart"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def metrics(path):
    """name -> value, summed over label sets; summary quantiles kept as name{quantile="q"}."""
    out = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    for line in lines:
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$', line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        if "quantile=" in labels:
            out[name + labels] = value
        else:
            out[name] = out.get(name, 0.0) + value
    return out


def buckets(path, name, labels=""):
    """Cumulative bucket counts of one histogram series, as {upper bound: count}."""
    out = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return out
    prefix = name + "_bucket{" + (labels + "," if labels else "")
    for line in lines:
        if line.startswith(prefix):
            m = re.search(r'le="([^"]+)"\}\s+(\S+)$', line)
            if m:
                out[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(m.group(2))
    return out


def quantiles(run, phase, name, labels=""):
    """Upper bounds (ms) of the buckets holding p50/p99/p99.9 of what a histogram counted
    during one phase (bucket deltas), and the count; None when nothing was counted."""
    before = buckets(os.path.join(run, f"{phase}.metrics.before"), name, labels)
    after = buckets(os.path.join(run, f"{phase}.metrics.after"), name, labels)
    d = {le: n - before.get(le, 0.0) for le, n in after.items()}
    if not d or d[max(d)] <= 0:
        return None
    total = d[max(d)]
    q = {}
    for want in [0.5, 0.99, 0.999]:
        q[want] = next(1e3 * le for le in sorted(d) if d[le] >= want * total)
    return {"count": total, "p50": q[0.5], "p99": q[0.99], "p999": q[0.999]}


def delta(run, phase, name):
    before = metrics(os.path.join(run, f"{phase}.metrics.before"))
    after = metrics(os.path.join(run, f"{phase}.metrics.after"))
    return after.get(name, 0.0) - before.get(name, 0.0)


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def broker_side(run, phase):
    """Broker-side facts about one phase, from the /metrics deltas and /proc."""
    p = load(os.path.join(run, f"{phase}.phase.json")) or {}
    syncs = delta(run, phase, "strata_wal_sync_seconds_count")
    sync_s = delta(run, phase, "strata_wal_sync_seconds_sum")
    wal_bytes = delta(run, phase, "strata_wal_bytes_written_total")
    reqs = delta(run, phase, "strata_produce_requests_total")
    wall = p.get("wall_s") or 0
    client = load(os.path.join(run, f"{phase}.json")) or {}
    other = None
    if wall and "machine_busy_cpu_s" in p and "client_cpu_s" in client:
        other = 100 * (p["machine_busy_cpu_s"] - p["broker_cpu_s"] - client["client_cpu_s"]) / wall
    return {
        "other_cpu_pct": other,
        "iowait_pct": 100 * p["machine_iowait_s"] / wall if wall and "machine_iowait_s" in p else None,
        "broker_cpu_pct": 100 * p["broker_cpu_s"] / wall if wall else None,
        "produce_requests": reqs,
        "wal_syncs": syncs,
        "avg_sync_ms": 1e3 * sync_s / syncs if syncs else None,
        "bytes_per_sync": wal_bytes / syncs if syncs else None,
        "bytes_per_request": delta(run, phase, "strata_produce_bytes_total") / reqs if reqs else None,
        "sync_busy_pct": 100 * sync_s / wall if wall else None,
        "cold_reads": delta(run, phase, "strata_cold_reads_total"),
        "block_cache_fetched_mb": delta(run, phase, "strata_block_cache_fetched_bytes_total") / 1e6,
        "fetch_requests": delta(run, phase, "strata_fetch_requests_total"),
        "backpressure": delta(run, phase, "strata_append_backpressure_total"),
        "objects_uploaded": delta(run, phase, "strata_objects_uploaded_total"),
        "exit": p.get("exit"),
        "wall_s": wall,
    }


def main():
    out_dir = sys.argv[1]
    w = print
    w(f"# Strata benchmark results: {os.path.basename(os.path.normpath(out_dir))}\n")
    try:
        w("```\n" + open(os.path.join(out_dir, "machine.txt")).read().rstrip() + "\n```\n")
    except OSError:
        pass

    try:
        notes = open(os.path.join(out_dir, "notes.txt")).read().strip()
        if notes:
            w("Run notes: " + "; ".join(notes.splitlines()) + "\n")
    except OSError:
        pass
    w("## Machine limits\n")
    w("| fio sequential write, fdatasync=1 | MB/s | IOPS | fdatasync p50 ms | p99 ms | p99.9 ms |")
    w("|---|---:|---:|---:|---:|---:|")
    runs = {}
    for tag in ["before", "after"]:
        for bs in ["64k", "1m"]:
            j = load(os.path.join(out_dir, f"fio-{tag}-{bs}.json"))
            if not j:
                continue
            job = j["jobs"][0]
            pct = job.get("sync", {}).get("lat_ns", {}).get("percentile", {})
            f = {
                "mbps": job["write"]["bw_bytes"] / 1e6,
                "iops": job["write"]["iops"],
                "p50": pct.get("50.000000", 0) / 1e6,
                "p99": pct.get("99.000000", 0) / 1e6,
                "p999": pct.get("99.900000", 0) / 1e6,
            }
            runs.setdefault(bs, []).append(f)
            w(f"| bs={bs} ({tag} the broker runs) | {fmt(f['mbps'])} | {fmt(f['iops'], 0)} | {fmt(f['p50'], 2)} | {fmt(f['p99'], 2)} | {fmt(f['p999'], 2)} |")
    # The targets use the mean of the runs of each block size.
    fio = {bs: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for bs, rs in runs.items()}
    for bs, f in fio.items():
        w(f"| bs={bs} (mean, used for the targets) | {fmt(f['mbps'])} | {fmt(f['iops'], 0)} | {fmt(f['p50'], 2)} | {fmt(f['p99'], 2)} | {fmt(f['p999'], 2)} |")
    loaded = None
    j = load(os.path.join(out_dir, "fio-loaded.json"))
    if j:
        wal_job, obj_job = j["jobs"][0], j["jobs"][1]
        sync = wal_job.get("sync", {}).get("lat_ns", {})
        pct = sync.get("percentile", {})
        loaded = {
            "mbps": wal_job["write"]["bw_bytes"] / 1e6,
            "objects_mbps": obj_job["write"]["bw_bytes"] / 1e6,
            "p50": pct.get("50.000000", 0) / 1e6,
            "p99": pct.get("99.000000", 0) / 1e6,
            "p999": pct.get("99.900000", 0) / 1e6,
            "max": sync.get("max", 0) / 1e6,
        }
        w(f"\nfio at the file WAL's half load, as the broker writes: 64 KiB fdatasync'd writes at "
          f"{fmt(loaded['mbps'])} MB/s beside 1 MiB O_DIRECT writes at {fmt(loaded['objects_mbps'])} MB/s: "
          f"fdatasync p50 {fmt(loaded['p50'], 2)} / p99 {fmt(loaded['p99'], 2)} / p99.9 {fmt(loaded['p999'], 2)} / "
          f"max {fmt(loaded['max'], 1)} ms\n")
    ip = load(os.path.join(out_dir, "iperf3.json"))
    if ip and "end" in ip:
        bps = ip["end"]["sum_received"]["bits_per_second"]
        w(f"\niperf3 loopback, 1 stream: {bps / 1e9:,.1f} Gbit/s = {bps / 8e6:,.0f} MB/s\n")

    results = {}
    for wal in ["file", "object"]:
        run = os.path.join(out_dir, wal)
        if not os.path.isdir(run):
            continue
        r = {ph: load(os.path.join(run, f"{ph}.json")) for ph in PHASES}
        b = {ph: broker_side(run, ph) for ph in PHASES}
        results[wal] = (r, b)
        w(f"## WAL = {wal}\n")
        try:
            w("Broker: `" + open(os.path.join(run, "broker.cmd")).read().strip() + "`\n")
        except OSError:
            pass
        w("| phase | target rec/s | achieved rec/s | MB/s | produce p50 ms | p99 ms | p99.9 ms | max ms | e2e p50 ms | e2e p99 ms | failed recs | client lag max ms | client CPU % | broker CPU % |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for ph in ["tput", "lat50", "lat25", "lat10", "e2e"]:
            j = r[ph]
            if not j:
                continue
            lat = j.get("produce_latency", {})
            e2e = j.get("e2e_latency", {})
            target = "max" if not j.get("target_rate") else fmt(j["target_rate"], 0)
            w(f"| {ph} | {target} | {fmt(j['steady_msgs_per_s'], 0)} | {fmt(j['steady_mb_per_s'])} | "
              f"{fmt(lat.get('p50_ms'), 2)} | {fmt(lat.get('p99_ms'), 2)} | {fmt(lat.get('p999_ms'), 2)} | {fmt(lat.get('max_ms'), 1)} | "
              f"{fmt(e2e.get('p50_ms'), 2) if e2e else '–'} | {fmt(e2e.get('p99_ms'), 2) if e2e else '–'} | "
              f"{fmt(j.get('errors', 0) + j.get('outstanding_after_flush', 0), 0)} | {fmt(j.get('max_schedule_lag_ms'), 0) if j.get('target_rate') else '–'} | "
              f"{fmt(j.get('client_cpu_pct'), 0)} | {fmt(b[ph]['broker_cpu_pct'], 0)} |")
        for ph, what in [("catchup", "after uploads settled, same broker"), ("catchup_restart", "after a broker restart (empty log cache)")]:
            c = r[ph]
            if not c:
                continue
            w(f"\nCatch-up read of bench-tput from offset 0, {what}: {fmt(c['consumed'], 0)} of {fmt(c['expected'], 0)} records "
              f"({c['bytes'] / 1e6:,.0f} MB) in {c['seconds']:.2f} s = **{c['mb_per_s']:,.1f} MB/s** "
              f"({c['msgs_per_s']:,.0f} rec/s), complete={c['complete']}, errors={c['errors']}, "
              f"offset gaps={c['offset_gaps']}, first record after {c['first_record_ms']:.0f} ms, "
              f"client CPU {c['client_cpu_pct']:.0f}%, broker CPU {fmt(b[ph]['broker_cpu_pct'], 0)}%.")
        w("\nBroker side, per phase (deltas of /metrics):\n")
        w("| phase | produce reqs | WAL syncs | KB/sync | KB/request | avg sync ms | time in sync % | fetch reqs | cold reads | block-cache fetched MB | backpressure | objects uploaded | other procs CPU % | iowait % |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for ph in PHASES:
            x = b[ph]
            if not x["wall_s"]:
                continue
            w(f"| {ph} | {fmt(x['produce_requests'], 0)} | {fmt(x['wal_syncs'], 0)} | "
              f"{fmt(x['bytes_per_sync'] / 1e3 if x['bytes_per_sync'] else None, 0)} | "
              f"{fmt(x['bytes_per_request'] / 1e3 if x['bytes_per_request'] else None, 0)} | "
              f"{fmt(x['avg_sync_ms'], 2)} | {fmt(x['sync_busy_pct'], 0)} | {fmt(x['fetch_requests'], 0)} | "
              f"{fmt(x['cold_reads'], 0)} | {fmt(x['block_cache_fetched_mb'], 1)} | {fmt(x['backpressure'], 0)} | "
              f"{fmt(x['objects_uploaded'], 0)} | {fmt(x['other_cpu_pct'], 0)} | {fmt(x['iowait_pct'], 0)} |")
        rows = []
        for ph in PHASES:
            sync = quantiles(run, ph, "strata_wal_sync_seconds")
            req = quantiles(run, ph, "strata_request_seconds", 'api="Produce"')
            if sync or req:
                rows.append((ph, sync, req))
        if rows:
            w("\nBroker-side timings per phase, from histogram bucket deltas (each figure is the upper "
              "bound of the bucket holding that quantile): the WAL's `fdatasync` "
              "(`strata_wal_sync_seconds`) and a Produce request from being read to being answered "
              "(`strata_request_seconds{api=\"Produce\"}`).\n")
            w("| phase | syncs | sync p50 ≤ ms | p99 ≤ | p99.9 ≤ | produce reqs | request p50 ≤ ms | p99 ≤ | p99.9 ≤ |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for ph, sync, req in rows:
                cells = []
                for x in [sync, req]:
                    cells += [fmt(x["count"], 0), fmt(x["p50"], 2), fmt(x["p99"], 2), fmt(x["p999"], 2)] if x else ["–"] * 4
                w(f"| {ph} | " + " | ".join(cells) + " |")
        problems = []
        for ph in PHASES:
            j = r[ph]
            if j is None:
                problems.append(f"{ph}: no client result")
                continue
            for k in ["errors", "produce_call_errors", "outstanding_after_flush", "consumer_errors", "offset_gaps"]:
                if j.get(k):
                    problems.append(f"{ph}: {k}={j[k]} {j.get('first_error', '')} {j.get('consumer_first_error', '')}".rstrip())
            if j.get("mode") == "e2e" and j.get("consumed", 0) < j.get("acked", 0):
                problems.append(f"{ph}: consumed {j['consumed']} < acked {j['acked']}")
            if j.get("mode") == "consume" and not j.get("complete"):
                problems.append(f"{ph}: catch-up incomplete ({j['consumed']} of {j['expected']})")
        try:
            notes = open(os.path.join(run, "notes.txt")).read().strip()
            if notes:
                problems += notes.splitlines()
        except OSError:
            pass
        try:
            bad = open(os.path.join(run, "broker-problems.log")).read().splitlines()
            if bad:
                problems.append(f"broker log: {len(bad)} WARN/ERROR lines, first: {bad[0][:300]}")
        except OSError:
            pass
        w("\nNotes: " + ("; ".join(problems) if problems else "none") + "\n")

    w("## Targets\n")
    w("| target | WAL | measured | limit | met? |")
    w("|---|---|---:|---:|---|")
    best_fio = max((f["mbps"] for f in fio.values()), default=None)  # of the per-size means
    for wal, (r, b) in results.items():
        t = r["tput"]
        if t and best_fio:
            ratio = t["steady_mb_per_s"] / best_fio
            w(f"| produce MB/s ≥ 50% of fio fsync'd seq. write (best of 64k/1m = {best_fio:,.1f} MB/s) | {wal} | "
              f"{t['steady_mb_per_s']:,.1f} MB/s ({100 * ratio:.0f}%) | {best_fio / 2:,.1f} MB/s | {'yes' if ratio >= 0.5 else 'NO'} |")
    for wal, (r, b) in results.items():
        lat = r["lat50"]
        if wal != "file" or not lat or not fio:
            continue
        for bs, f in fio.items():
            limit = f["p99"] + 1.0
            p99 = lat["produce_latency"]["p99_ms"]
            w(f"| produce p99 at half load ≤ fsync p99 + 1 ms (fio bs={bs}) | {wal} | {p99:,.2f} ms | {limit:,.2f} ms | "
              f"{'yes' if p99 <= limit else 'NO'} |")
        if loaded:
            limit = loaded["p99"] + 1.0
            p99 = lat["produce_latency"]["p99_ms"]
            w(f"| produce p99 at half load ≤ fsync p99 + 1 ms (fio at the same write load) | {wal} | {p99:,.2f} ms | "
              f"{limit:,.2f} ms | {'yes' if p99 <= limit else 'NO'} |")
    for wal, (r, b) in results.items():
        e = b["e2e"]
        if not e["wall_s"]:
            continue
        ok = e["cold_reads"] == 0 and e["block_cache_fetched_mb"] == 0
        w(f"| tail consumer served from memory (cold reads / block-cache MB during e2e = 0) | {wal} | "
          f"{e['cold_reads']:.0f} / {e['block_cache_fetched_mb']:.1f} | 0 / 0 | {'yes' if ok else 'NO'} |")
        for ph in ["catchup", "catchup_restart"]:
            c = b[ph]
            if not c["wall_s"] or not r[ph]:
                continue
            mb = r[ph]["bytes"] / 1e6
            w(f"| {ph}: reads go to objects (cold reads / block-cache MB fetched / MB consumed) | {wal} | "
              f"{c['cold_reads']:.0f} / {c['block_cache_fetched_mb']:,.1f} / {mb:,.1f} | cold reads > 0 | "
              f"{'yes' if c['cold_reads'] > 0 else 'no (served from the log cache)'} |")


if __name__ == "__main__":
    main()
