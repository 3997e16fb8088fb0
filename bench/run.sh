#!/usr/bin/env bash
# Strata benchmark: a real librdkafka client (bench/strata-bench.c) against one broker, once per
# WAL backend, plus the machine's own limits (fio, iperf3) measured the same way on every run.
#
#   bench/run.sh            # 5-8 minutes; results in bench/results/<UTC time>/ (summary.md)
#
# Knobs (environment, all optional):
#   STRATA_BIN=PATH    use this broker binary instead of `cargo build --release`
#   WALS="file object" WAL backends to run
#   TPUT_SECONDS=20    max-load produce phase      LAT_SECONDS=20  paced produce at half load
#   SWEEP_SECONDS=10   paced produce at 25% and 10% of max load (0 = skip)
#   E2E_SECONDS=15     paced produce + tail consumer at half load
#   PARTITIONS=8  RECORD_BYTES=1024  LINGER_MS=5 (librdkafka's default, max-load phase)
#   LAT_LINGER_MS=0    linger.ms of the paced phases: a linger is a wait of the client's own,
#                      which would hide the broker's latency below it
#   FIO_SECONDS=10     per fio job; fio runs before and after the broker phases (4 jobs)
#   IPERF_SECONDS=5
#   DATA_ROOT=DIR      where brokers' data dirs and fio's files go (default target/bench-data:
#                      the repository's filesystem; never use a tmpfs, fsync would be free)
#   OBJECT_STORE=URL   the brokers' --object-store (default: a directory in the data dir, on
#                      the WAL's disk). `file:///dev/shm/strata-bench` keeps objects off the
#                      WAL's disk, as S3 does in a deployment; its contents are deleted at
#                      each fresh start. Objects then take RAM: shorten the phases
#   OUT=DIR            results directory
#   PERF=1             perf-record the broker during each max-load phase (needs perf)
#   DROP_CACHES=1      drop the page cache before the catch-up read (root), so that the local
#                      object store is read from disk, not memory
#   KEEP_DATA=1        keep the brokers' data dirs
#   SKIP_DEPS=1        don't apt-get anything
#
# Every client call runs under `timeout`, the whole run is bounded (< 10 min with the defaults),
# and the EXIT trap stops every process this script started (by PID).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

WALS=${WALS:-"file object"}
TPUT_SECONDS=${TPUT_SECONDS:-20}
LAT_SECONDS=${LAT_SECONDS:-20}
SWEEP_SECONDS=${SWEEP_SECONDS:-10}
E2E_SECONDS=${E2E_SECONDS:-15}
PARTITIONS=${PARTITIONS:-8}
RECORD_BYTES=${RECORD_BYTES:-1024}
LINGER_MS=${LINGER_MS:-5}
LAT_LINGER_MS=${LAT_LINGER_MS:-0}
FIO_SECONDS=${FIO_SECONDS:-10}
IPERF_SECONDS=${IPERF_SECONDS:-5}
WARMUP_SECONDS=2
UPLOAD_INTERVAL_MS=1000
DATA_ROOT=${DATA_ROOT:-$ROOT/target/bench-data}
OBJECT_STORE=${OBJECT_STORE:-}
OUT=${OUT:-$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

RUN="$OUT"
BROKER_PID=""
IPERF_PID=""
PERF_PID=""
cleanup() {
    local rc=$?
    for pid in $PERF_PID $IPERF_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $BROKER_PID ]]; then stop_broker || true; fi
    if [[ -z ${KEEP_DATA:-} && -d $DATA_ROOT ]]; then rm -rf "$DATA_ROOT"/file "$DATA_ROOT"/object "$DATA_ROOT"/fio; fi
    if [[ -z ${KEEP_DATA:-} && $OBJECT_STORE == file://* ]]; then rm -rf "${OBJECT_STORE#file://}"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- dependencies, build
if [[ -z ${SKIP_DEPS:-} ]]; then
    missing=()
    for p in librdkafka-dev fio iperf3 jq curl gcc python3; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]} (or set SKIP_DEPS=1)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

mkdir -p "$OUT" "$DATA_ROOT/bin"
OUT="$(cd "$OUT" && pwd)"
exec 2> >(tee -a "$OUT/run.log" >&2) # the progress log, with every client command line, kept
log "results in $OUT"

log "building strata-bench"
cc -O2 -Wall -o "$DATA_ROOT/bin/strata-bench" "$BENCH_DIR/strata-bench.c" -lrdkafka -lpthread -lm
CLIENT="$DATA_ROOT/bin/strata-bench"

if [[ -z ${STRATA_BIN:-} ]]; then
    log "building strata (cargo build --release)"
    (cd "$ROOT" && cargo build --release --bin strata) >&2
    STRATA_BIN="$ROOT/target/release/strata"
fi
# A private copy, so a concurrent rebuild cannot swap the binary under a running benchmark.
if [[ "$(realpath "$STRATA_BIN")" != "$(realpath -m "$DATA_ROOT/bin/strata")" ]]; then
    cp "$STRATA_BIN" "$DATA_ROOT/bin/strata"
fi
STRATA="$DATA_ROOT/bin/strata"

# ---------------------------------------------------------------------------- helpers
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
pick_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
# Machine-wide busy and iowait ticks (all CPUs): other processes on a shared machine show up here.
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $6 }' /proc/stat; }

metrics() { curl -sf --max-time 5 "http://$ADMIN/metrics" || true; }

start_broker() { # wal dir [keep]: a fresh data dir unless "keep"
    local wal=$1 dir=$2 keep=${3:-}
    KAFKA_PORT=$(pick_port 39092)
    ADMIN_PORT=$(pick_port $((KAFKA_PORT + 7)))
    BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
    ADMIN="127.0.0.1:$ADMIN_PORT"
    if [[ -z $keep ]]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        if [[ $OBJECT_STORE == file://* ]]; then
            rm -rf "${OBJECT_STORE#file://}"
            mkdir -p "${OBJECT_STORE#file://}"
        fi
    fi
    BROKER_CMD=("$STRATA" serve --listen "$BOOTSTRAP" --admin-listen "$ADMIN" --data-dir "$dir"
        --wal "$wal" --num-partitions "$PARTITIONS" --upload-interval-ms "$UPLOAD_INTERVAL_MS")
    if [[ -n $OBJECT_STORE ]]; then BROKER_CMD+=(--object-store "$OBJECT_STORE"); fi
    echo "${BROKER_CMD[*]}" >"$RUN/broker.cmd"
    NO_COLOR=1 "${BROKER_CMD[@]}" >>"$RUN/broker.log" 2>&1 &
    BROKER_PID=$!
    local i
    for i in $(seq 1 100); do
        kill -0 "$BROKER_PID" 2>/dev/null || { tail -5 "$RUN/broker.log" >&2; die "broker exited at start"; }
        # Make sure the port answers for *our* process, not someone else's broker.
        if curl -sf --max-time 1 "http://$ADMIN/healthz" >/dev/null &&
            ss -Hltnp "sport = :$KAFKA_PORT" | grep -q "pid=$BROKER_PID,"; then
            return 0
        fi
        sleep 0.2
    done
    die "broker did not become healthy in 20 s"
}

stop_broker() {
    local pid=$BROKER_PID t0 i
    BROKER_PID=""
    t0=$(date +%s.%N)
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "broker did not stop within 20 s of SIGTERM; killed" >>"$RUN/notes.txt"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    local status=0
    wait "$pid" 2>/dev/null || status=$?
    echo "broker_exit_status=$status stop_seconds=$(calc "$(date +%s.%N) - $t0")" >>"$RUN/notes.txt"
}

# phase NAME TIMEOUT CLIENT-ARGS...: runs the client, saves its JSON and the broker's metrics and
# CPU before and after.
phase() {
    local name=$1 limit=$2
    shift 2
    log "[$WAL] $name: $*"
    metrics >"$RUN/$name.metrics.before"
    local c0 t0 c1 t1 s0 s1 rc=0
    s0=$(sys_ticks)
    c0=$(cpu_ticks "$BROKER_PID")
    t0=$(date +%s.%N)
    timeout --kill-after=5 "$limit" "$CLIENT" "$@" >"$RUN/$name.json" 2>"$RUN/$name.stderr" || rc=$?
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$BROKER_PID")
    s1=$(sys_ticks)
    metrics >"$RUN/$name.metrics.after"
    printf '{"phase":"%s","exit":%d,"wall_s":%s,"broker_cpu_s":%s,"machine_busy_cpu_s":%s,"machine_iowait_s":%s,"loadavg":"%s"}\n' \
        "$name" "$rc" "$(calc "$t1 - $t0")" "$(calc "($c1 - $c0) / $CLK_TCK")" \
        "$(calc "(${s1% *} - ${s0% *}) / $CLK_TCK")" "$(calc "(${s1#* } - ${s0#* }) / $CLK_TCK")" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RUN/$name.phase.json"
    if ((rc != 0)); then
        log "[$WAL] $name: client exit $rc: $(tail -c 300 "$RUN/$name.stderr")"
        echo "$name: client exit $rc" >>"$RUN/notes.txt"
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || die "broker died during $name (see $RUN/broker.log)"
}

metric_value() { # file name -> sum over label sets
    awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f", s }' "$1"
}

# ---------------------------------------------------------------------------- quiet machine
# Client and broker share 2 cores with whatever else runs here (builds, other tests): wait up to
# WAIT_QUIET seconds for the machine to be idle (< 25% of one core busy over 2 s), then go anyway;
# every phase also records how much CPU other processes used.
WAIT_QUIET=${WAIT_QUIET:-60}
quiet_deadline=$((SECONDS + WAIT_QUIET))
while :; do
    a=$(sys_ticks)
    sleep 2
    b=$(sys_ticks)
    busy=$(calc "100 * (${b% *} - ${a% *}) / $CLK_TCK / 2")
    if awk "BEGIN { exit !($busy < 25) }"; then
        log "machine idle (${busy}% of one core busy)"
        break
    fi
    if ((SECONDS >= quiet_deadline)); then
        log "machine still busy (${busy}% of one core) after ${WAIT_QUIET}s; going ahead"
        echo "machine busy at start: ${busy}% of one core" >>"$OUT/notes.txt"
        break
    fi
done

# ---------------------------------------------------------------------------- machine
{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel: $(uname -r)"
    mkdir -p "$DATA_ROOT"
    echo "data_fs: $(df -hT "$DATA_ROOT" | awk 'NR==2 {print $1, $2, $3 " total", $5 " free"}')"
    dev=$(df "$DATA_ROOT" | awk 'NR==2 {print $1}')
    echo "data_disk: $(lsblk -dno NAME,SIZE,ROTA,MODEL "$dev" 2>/dev/null | head -1) (ROTA=1 means the kernel reports it rotational)"
    echo "mount: $(findmnt -no OPTIONS --target "$DATA_ROOT")"
    echo "librdkafka: $(dpkg-query -W -f='${Version}' librdkafka-dev 2>/dev/null)"
    echo "fio: $(fio --version)"
    echo "iperf3: $(iperf3 --version | head -1)"
    echo "strata_commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) (uncommitted changes in crates/: $(git -C "$ROOT" status --short -- crates 2>/dev/null | wc -l) files)"
    echo "strata_binary_sha256: $(sha256sum "$STRATA" | cut -c1-16)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---------------------------------------------------------------------------- fio, iperf3
FIO_DIR="$DATA_ROOT/fio"
run_fio() { # tag
    mkdir -p "$FIO_DIR"
    local bs
    for bs in 64k 1m; do
        log "fio ($1) sequential write bs=$bs fdatasync=1 (${FIO_SECONDS}s) in $FIO_DIR"
        # overwrite=1: fio writes the file out first, so the timed pass rewrites allocated blocks,
        # as the file WAL does with its zero-filled segments.
        timeout 120 fio --name="seqwrite-$bs" --directory="$FIO_DIR" --rw=write --bs="$bs" --size=256M \
            --overwrite=1 --fdatasync=1 --ioengine=sync --time_based --runtime="$FIO_SECONDS" \
            --output-format=json >"$OUT/fio-$1-$bs.json"
        rm -f "$FIO_DIR"/*
    done
}
run_fio before

IPERF_PORT=$(pick_port 39201)
log "iperf3 loopback (${IPERF_SECONDS}s)"
iperf3 -s -1 -p "$IPERF_PORT" -B 127.0.0.1 >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5
timeout 60 iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$IPERF_SECONDS" -J >"$OUT/iperf3.json" || true
wait "$IPERF_PID" 2>/dev/null || true
IPERF_PID=""

# ---------------------------------------------------------------------------- per WAL backend
for WAL in $WALS; do
    RUN="$OUT/$WAL"
    mkdir -p "$RUN"
    : >"$RUN/notes.txt"
    start_broker "$WAL" "$DATA_ROOT/$WAL"
    log "[$WAL] broker pid $BROKER_PID on $BOOTSTRAP (admin $ADMIN)"
    for t in tput lat e2e; do
        timeout 30 "$CLIENT" create -b "$BOOTSTRAP" -t "bench-$t" -p "$PARTITIONS" >>"$RUN/create.json"
    done

    # 1. Max load.
    if [[ -n ${PERF:-} ]]; then
        (sleep "$WARMUP_SECONDS" && exec perf record -F 499 -g -p "$BROKER_PID" -o "$RUN/perf.data" \
            -- sleep $((TPUT_SECONDS - WARMUP_SECONDS - 1))) >"$RUN/perf.log" 2>&1 &
        PERF_PID=$!
    fi
    phase tput $((TPUT_SECONDS + 90)) produce -b "$BOOTSTRAP" -t bench-tput -d "$TPUT_SECONDS" \
        -w "$WARMUP_SECONDS" -r 0 -s "$RECORD_BYTES" -l "$LINGER_MS"
    if [[ -n $PERF_PID ]]; then
        wait "$PERF_PID" || true
        PERF_PID=""
        perf report -i "$RUN/perf.data" --no-children --sort dso,symbol --percent-limit 1 --stdio \
            >"$RUN/perf-report.txt" 2>/dev/null || true
        perf report -i "$RUN/perf.data" --children --sort symbol --percent-limit 3 --stdio -g none \
            >"$RUN/perf-children.txt" 2>/dev/null || true
    fi
    MAX_RATE=$(jq -r '.steady_msgs_per_s // 0' "$RUN/tput.json" 2>/dev/null || echo 0)
    MAX_RATE=${MAX_RATE%.*}
    ((MAX_RATE > 0)) || die "[$WAL] no throughput measured"
    HALF=$((MAX_RATE / 2))

    # 2. Produce latency at half of max load, and a short sweep below it.
    phase lat50 $((LAT_SECONDS + 90)) produce -b "$BOOTSTRAP" -t bench-lat -d "$LAT_SECONDS" \
        -w "$WARMUP_SECONDS" -r "$HALF" -s "$RECORD_BYTES" -l "$LAT_LINGER_MS"
    if ((SWEEP_SECONDS > 0)); then
        for pct in 25 10; do
            phase "lat$pct" $((SWEEP_SECONDS + 90)) produce -b "$BOOTSTRAP" -t bench-lat -d "$SWEEP_SECONDS" \
                -w "$WARMUP_SECONDS" -r $((MAX_RATE * pct / 100)) -s "$RECORD_BYTES" -l "$LAT_LINGER_MS"
        done
    fi

    # 3. End to end with a tail consumer, at half load.
    phase e2e $((E2E_SECONDS + 90)) e2e -b "$BOOTSTRAP" -t bench-e2e -d "$E2E_SECONDS" \
        -w "$WARMUP_SECONDS" -r "$HALF" -s "$RECORD_BYTES" -l "$LAT_LINGER_MS"

    # 4. Catch-up: wait until the uploader has caught up (nothing uploaded for 2 s, at least
    # 2 upload intervals), then read bench-tput from the beginning.
    log "[$WAL] waiting for uploads to settle"
    prev=-1 stable=0
    for i in $(seq 1 60); do
        metrics >"$RUN/upload.metrics"
        cur=$(metric_value "$RUN/upload.metrics" strata_objects_uploaded_bytes_total)
        if [[ $cur == "$prev" ]]; then stable=$((stable + 1)); else stable=0; fi
        prev=$cur
        ((stable >= 2 && i >= 3)) && break
        sleep 1
    done
    if [[ -n ${DROP_CACHES:-} ]]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches && echo "page cache dropped before catch-up" >>"$RUN/notes.txt"
    fi
    phase catchup 100 consume -b "$BOOTSTRAP" -t bench-tput -T 90

    # 5. The same read after a restart: the log cache starts empty, so every byte comes from
    # objects (through the block cache).
    stop_broker
    t0=$(date +%s.%N)
    start_broker "$WAL" "$DATA_ROOT/$WAL" keep
    echo "restart: healthy $(calc "$(date +%s.%N) - $t0") s after start" >>"$RUN/notes.txt"
    phase catchup_restart 100 consume -b "$BOOTSTRAP" -t bench-tput -T 90

    stop_broker
    grep -E ' (WARN|ERROR) ' "$RUN/broker.log" >"$RUN/broker-problems.log" || true
    [[ -n ${KEEP_DATA:-} ]] || rm -rf "${DATA_ROOT:?}/$WAL"
done

run_fio after

# The disk under the file WAL's half load as the broker writes it: a WAL-like stream of 64 KiB
# fdatasync'd writes and an object-like stream of 1 MiB O_DIRECT writes, each at the half-load
# rate. Its fdatasync tail is the floor for the broker's latency tail at that load.
HALF_MB=$(jq -r '.steady_mb_per_s // 0' "$OUT/file/lat50.json" 2>/dev/null || echo 0)
HALF_MB=${HALF_MB%.*}
if ((${HALF_MB:-0} > 0)); then
    mkdir -p "$FIO_DIR"
    log "fio at the broker's half load: WAL-like 64k fdatasync + 1m O_DIRECT, ${HALF_MB} MB/s each (${LAT_SECONDS}s)"
    timeout 180 fio --directory="$FIO_DIR" --size=256M --overwrite=1 --ioengine=sync --time_based \
        --runtime="$LAT_SECONDS" --output-format=json \
        --name=wal --rw=write --bs=64k --fdatasync=1 --rate="${HALF_MB}m" \
        --name=objects --rw=write --bs=1m --direct=1 --size=4G --rate="${HALF_MB}m" \
        >"$OUT/fio-loaded.json" || true
    rm -f "$FIO_DIR"/*
fi

python3 "$BENCH_DIR/report.py" "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
