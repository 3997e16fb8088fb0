"""A Strata cluster on loopback for the cluster-mode tests: voters that are also brokers, and
brokers that only follow, on one S3-compatible server (moto) with the object WAL, or with file
WALs in one directory every node can read (a shared volume)."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conftest import free_port


class Cluster:
    def __init__(self, factory, moto, voters: int = 3, wal: str = "object",
                 upload_interval_ms: int = 1000, extra=(), racks: dict[int, str] | None = None):
        self.factory = factory
        self.tag = uuid.uuid4().hex[:6]
        self.bucket = moto.create_bucket(f"cluster-{self.tag}")
        self.store = moto.url(self.bucket)
        self.wal = wal
        self.shared = factory.base / f"shared-wal-{self.tag}"
        self.upload_interval_ms = upload_interval_ms
        self.extra = [str(a) for a in extra]
        self.racks = racks or {}
        ports = {i: free_port() for i in range(1, voters + 1)}
        self.quorum = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
        self.nodes = {i: self._node(i) for i in ports}
        # No voter serves before the quorum has a leader: start them together.
        for n in self.nodes.values():
            n.launch()
        for n in self.nodes.values():
            n.wait_ready()

    def _node(self, node_id: int, *args):
        wal = ("object" if self.wal == "object" else f"file:{self.shared}/node-{node_id}")
        if node_id in self.racks:
            args = (*args, "--rack", self.racks[node_id])
        return self.factory("--node-id", node_id, "--controller-quorum", self.quorum,
                            "--object-store", self.store, "--wal", wal,
                            "--upload-interval-ms", self.upload_interval_ms, *args, *self.extra,
                            start=False, name=f"node{node_id}-{self.tag}")

    def add_broker(self, node_id: int):
        """A broker that follows the metadata quorum without voting."""
        node = self._node(node_id, "--roles", "broker",
                          "--controller-listen", f"127.0.0.1:{free_port()}")
        node.start()
        self.nodes[node_id] = node
        return node

    def live(self):
        return {i: n for i, n in self.nodes.items() if n.alive()}

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.live().values())

    def active_controller(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, n in self.live().items():
                if "strata_controller_active_count 1" in n.metrics():
                    return i
            time.sleep(0.1)
        raise AssertionError("no active controller")

    def metadata(self, via: int | None = None, topic: str | None = None):
        bootstrap = self.nodes[via].bootstrap if via is not None else self.bootstrap
        a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
        return a.list_topics(topic, timeout=15)

    def leaders(self, topic: str, via: int | None = None) -> dict[int, int]:
        md = self.metadata(via, topic)
        return {p: m.leader for p, m in md.topics[topic].partitions.items()}


class Load:
    """An idempotent acks=all producer writing to every partition from a thread until
    stopped; keeps every acknowledged (partition, offset, value)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, tag: str = "load"):
        self.topic, self.partitions, self.tag = topic, partitions, tag
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 5,
                                  "message.timeout.ms": 60000})
        self.acked: list[tuple[int, int, bytes]] = []
        self.errors: list = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cb(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.errors.append(err)

    def _run(self):
        while not self._stop.is_set():
            for _ in range(50):
                value = f"{self.tag}-{self.sent:08d}".encode()
                try:
                    self.producer.produce(self.topic, value=value,
                                          partition=self.sent % self.partitions,
                                          on_delivery=self._cb)
                    self.sent += 1
                except BufferError:
                    break
            self.producer.poll(0.01)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(10)
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} records of the load still undelivered after {timeout}s"
