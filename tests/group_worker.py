"""One consumer-group member as its own OS process, so a test can SIGTERM (graceful close,
LeaveGroup) or SIGKILL it. Used by test_groups.py through groups_util.Worker.

    python group_worker.py --client confluent-classic --bootstrap HOST:PORT --group G \
        --topic T --out FILE [--conf JSON]

Clients: confluent-classic, confluent-consumer (KIP-848, group.protocol=consumer),
kafka-python, aiokafka. Every member does the same thing, the commit-after-processing
pattern: poll a batch, "process" it (append one line per record to FILE and flush), then
commit the processed positions synchronously. Positions whose commit failed for a transient
reason stay pending and are retried; pending positions of revoked partitions are committed
in the revoke callback (once) and then dropped, so a commit never goes out for a partition
this member no longer owns.

FILE gets one line per event (flushed before anything that depends on it happens):
    S <t>                         started
    A <t> p,p,...                 partitions assigned (the new ones, for incremental protocols)
    V <t> p,p,...                 partitions revoked
    L <t> p,p,...                 partitions lost
    R <p> <offset> <seq>          a record processed (seq parsed from the value "SEQ:...")
    C <t> p:o p:o ...             a commit acknowledged by the broker (o = next offset to read)
    E <t> <text>                  an error (commit failure, consumer error)
    X <t>                         closed cleanly (after SIGTERM)
t is time.time() taken right after the event (for C: after the broker's acknowledgement).
A record line is written before its commit is sent, so after a SIGKILL the file still holds
everything that member processed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

STOP = False


def _on_term(signum, frame):  # noqa: ARG001
    global STOP
    STOP = True


class Out:
    def __init__(self, path: str):
        self.f = open(path, "a", buffering=1 << 16)

    def line(self, s: str) -> None:
        self.f.write(s + "\n")

    def ev(self, kind: str, text: str = "") -> None:
        self.f.write(f"{kind} {time.time():.6f} {text}\n")
        self.f.flush()

    def flush(self) -> None:
        self.f.flush()

    def records(self, recs) -> None:
        """recs: iterable of (partition, offset, value bytes)."""
        parts = []
        for p, o, v in recs:
            try:
                seq = int(v.split(b":", 1)[0])
            except Exception:  # noqa: BLE001 - a foreign record: keep it visible
                seq = -1
            parts.append(f"R {p} {o} {seq}\n")
        self.f.write("".join(parts))
        self.f.flush()

    def commit(self, offsets: dict[int, int]) -> None:
        self.ev("C", " ".join(f"{p}:{o}" for p, o in sorted(offsets.items())))


def plist(ps) -> str:
    return ",".join(str(p) for p in sorted(ps))


# ---------------------------------------------------------------------------
# confluent-kafka (classic and KIP-848)
# ---------------------------------------------------------------------------

def run_confluent(a, out: Out, conf_extra: dict, kip848: bool) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "client.id": a.name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "socket.timeout.ms": 10000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "topic.metadata.refresh.interval.ms": 5000,
    }
    if kip848:
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    conf.update(conf_extra)
    c = Consumer(conf)
    pending: dict[int, int] = {}

    def do_commit(offs: dict[int, int]) -> dict[int, int]:
        """Commit synchronously; returns the partitions that were acknowledged."""
        if not offs:
            return {}
        tps = [TopicPartition(a.topic, p, o) for p, o in offs.items()]
        try:
            res = c.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            out.ev("E", f"commit {plist(offs)}: {e}")
            return {}
        ok, bad = {}, []
        for tp in res or []:
            if tp.error is None:
                ok[tp.partition] = tp.offset
            else:
                bad.append(f"{tp.partition}:{tp.error}")
        if ok:
            out.commit(ok)
        if bad:
            out.ev("E", "commit partition errors " + " ".join(bad))
        return ok

    def on_assign(consumer, parts):
        out.ev("A", plist(tp.partition for tp in parts))

    def on_revoke(consumer, parts):
        revoked = {tp.partition for tp in parts}
        mine = {p: o for p, o in pending.items() if p in revoked}
        if mine:
            do_commit(mine)
        for p in revoked:
            pending.pop(p, None)
        out.ev("V", plist(revoked))

    def on_lost(consumer, parts):
        for tp in parts:
            pending.pop(tp.partition, None)
        out.ev("L", plist(tp.partition for tp in parts))

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    out.ev("S")
    while not STOP:
        msgs = c.consume(num_messages=500, timeout=0.3)
        batch = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    out.ev("E", f"consume: {err}")
                    if err.fatal():
                        raise KafkaException(err)
                continue
            batch.append((m.partition(), m.offset(), m.value()))
        if batch:
            out.records(batch)
            for p, o, _ in batch:
                if o + 1 > pending.get(p, -1):
                    pending[p] = o + 1
        if pending:
            for p in do_commit(dict(pending)):
                pending.pop(p, None)
    if pending:
        do_commit(dict(pending))
    c.close()


# ---------------------------------------------------------------------------
# kafka-python
# ---------------------------------------------------------------------------

def run_kafka_python(a, out: Out, conf_extra: dict) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    conf = dict(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.name,
                enable_auto_commit=False, auto_offset_reset="earliest",
                session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_records=500,
                reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
    conf.update(conf_extra)
    c = KafkaConsumer(**conf)
    pending: dict[int, int] = {}

    def do_commit(offs: dict[int, int]) -> dict[int, int]:
        if not offs:
            return {}
        try:
            c.commit({TopicPartition(a.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offs.items()},
                     timeout_ms=10000)
        except KafkaError as e:
            out.ev("E", f"commit {plist(offs)}: {e!r}")
            return {}
        out.commit(offs)
        return offs

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            ps = {tp.partition for tp in revoked}
            mine = {p: o for p, o in pending.items() if p in ps}
            if mine:
                do_commit(mine)
            for p in ps:
                pending.pop(p, None)
            out.ev("V", plist(ps))

        def on_partitions_assigned(self, assigned):
            out.ev("A", plist(tp.partition for tp in assigned))

        def on_partitions_lost(self, lost):
            for tp in lost:
                pending.pop(tp.partition, None)
            out.ev("L", plist(tp.partition for tp in lost))

    c.subscribe([a.topic], listener=Listener())
    out.ev("S")
    while not STOP:
        data = c.poll(timeout_ms=300, max_records=500)
        batch = []
        for tp, recs in data.items():
            for r in recs:
                batch.append((tp.partition, r.offset, r.value))
        if batch:
            out.records(batch)
            for p, o, _ in batch:
                if o + 1 > pending.get(p, -1):
                    pending[p] = o + 1
        if pending:
            for p in do_commit(dict(pending)):
                pending.pop(p, None)
    if pending:
        do_commit(dict(pending))
    c.close()


# ---------------------------------------------------------------------------
# aiokafka
# ---------------------------------------------------------------------------

def run_aiokafka(a, out: Out, conf_extra: dict) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
    from aiokafka.errors import KafkaError

    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        conf = dict(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.name,
                    enable_auto_commit=False, auto_offset_reset="earliest",
                    session_timeout_ms=6000, heartbeat_interval_ms=1000)
        conf.update(conf_extra)
        c = AIOKafkaConsumer(**conf)
        pending: dict[int, int] = {}

        async def do_commit(offs: dict[int, int]) -> dict[int, int]:
            if not offs:
                return {}
            try:
                await asyncio.wait_for(
                    c.commit({TopicPartition(a.topic, p): o for p, o in offs.items()}), 15)
            except (KafkaError, asyncio.TimeoutError) as e:
                out.ev("E", f"commit {plist(offs)}: {e!r}")
                return {}
            out.commit(offs)
            return offs

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                ps = {tp.partition for tp in revoked}
                mine = {p: o for p, o in pending.items() if p in ps}
                if mine:
                    await do_commit(mine)
                for p in ps:
                    pending.pop(p, None)
                out.ev("V", plist(ps))

            async def on_partitions_assigned(self, assigned):
                out.ev("A", plist(tp.partition for tp in assigned))

        await c.start()
        c.subscribe([a.topic], listener=Listener())
        out.ev("S")
        try:
            while not stop.is_set():
                data = await c.getmany(timeout_ms=300, max_records=500)
                batch = []
                for tp, recs in data.items():
                    for r in recs:
                        batch.append((tp.partition, r.offset, r.value))
                if batch:
                    out.records(batch)
                    for p, o, _ in batch:
                        if o + 1 > pending.get(p, -1):
                            pending[p] = o + 1
                if pending:
                    for p in await do_commit(dict(pending)):
                        pending.pop(p, None)
            if pending:
                await do_commit(dict(pending))
        finally:
            await c.stop()

    asyncio.run(main())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True,
                    choices=["confluent-classic", "confluent-consumer", "kafka-python", "aiokafka"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default=f"worker-{os.getpid()}")
    ap.add_argument("--conf", default="{}", help="extra client config, JSON")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_term)
    out = Out(a.out)
    extra = json.loads(a.conf)
    try:
        if a.client == "confluent-classic":
            run_confluent(a, out, extra, kip848=False)
        elif a.client == "confluent-consumer":
            run_confluent(a, out, extra, kip848=True)
        elif a.client == "kafka-python":
            run_kafka_python(a, out, extra)
        else:
            run_aiokafka(a, out, extra)
    except BaseException as e:  # noqa: BLE001 - reported through the file and the exit code
        out.ev("E", f"worker died: {e!r}")
        raise
    out.ev("X")
    return 0


if __name__ == "__main__":
    sys.exit(main())
