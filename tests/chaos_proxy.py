"""A fault-injecting TCP proxy for Kafka connections on loopback.

`ChaosProxy(listen_port, upstream_port)` accepts client connections and forwards each to the
broker over its own upstream connection, frame by frame (Kafka's 4-byte size prefix). With
chaos on it injects two kinds of faults:

  * kill: every `kill_interval` seconds (uniformly random) one live connection is torn down in
    both directions (client side and broker side, half of the time with an RST instead of a FIN),
    whatever is in flight. Connections with requests still waiting for their response are
    preferred, so the kill usually hits requests the broker may or may not have executed.
  * drop-response: a Produce request is forwarded to the broker and, when the broker's response
    to it arrives, the response is thrown away and the connection killed instead. The broker has
    executed the request (appended the batch) but the client never learns it: it must retry
    a batch that is already in the log. This is the case that makes a non-idempotent producer
    write duplicates.

The counters (`kills`, `dropped_responses`, `connections`, `produce_requests`, ...) let a test
prove that the faults actually happened. The proxy also reads the record batch headers in
Produce requests (v3-v13): `batches_resent` counts idempotent batches (producer id >= 0) sent
again with the same producer id, epoch, partition, base sequence and record count, and
`written_batches_resent` those of them that were in a request the broker had answered (the
response the proxy dropped), i.e. retries the broker must recognise as duplicates.

Chaos can be switched off (`chaos = False`) to read data back through the same advertised
address without faults.

Threads only (two pumps per connection and one chaos thread); everything is closed by stop().
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

from kafka_wire import API_PRODUCE, Reader


class _Pair:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: "ChaosProxy", client: socket.socket, upstream: socket.socket, ident: int):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.ident = ident
        self.lock = threading.Lock()
        self.closed = False
        self.in_flight: set[int] = set()  # correlation ids forwarded, response not yet seen
        self.doomed: set[int] = set()  # correlation ids whose response is to be dropped
        self.batches: dict[int, list[tuple]] = {}  # correlation id -> idempotent batches in it
        self.last_request = 0.0

    def close(self, rst: bool = False) -> bool:
        """Tear down both directions; True if this call did it.

        Only shutdown() here: it wakes up the pump threads blocked in recv() (closing an fd
        another thread is blocked on does not, and would not send anything to the peer); each
        pump closes the socket it reads from when it exits. rst: SO_LINGER 0 and no FIN, so
        that final close sends a reset instead."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
        for s in (self.client, self.upstream):
            try:
                if rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RD)
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.proxy._forget(self)
        return True

    def release(self, sock: socket.socket) -> None:
        """A pump is done: close the socket it reads from (after closing the pair)."""
        self.close()
        try:
            sock.close()
        except OSError:
            pass


def _recv_frames(sock: socket.socket, buf: bytearray):
    """Read from `sock` into `buf`; return the complete frames (with their size prefix)
    now at the front of `buf`, or None at EOF/error."""
    try:
        chunk = sock.recv(256 * 1024)
    except OSError:
        return None
    if not chunk:
        return None
    buf += chunk
    frames = []
    while len(buf) >= 4:
        (n,) = struct.unpack_from(">i", buf, 0)
        if n < 0:
            return None
        if len(buf) < 4 + n:
            break
        frames.append(bytes(buf[:4 + n]))
        del buf[:4 + n]
    return frames


# --- just enough of Produce requests to see which batches they carry -----------------------
def produce_batches(frame: bytes) -> list[tuple]:
    """(topic, partition, producer id, epoch, base sequence, record count) of every record
    batch in a Produce request frame (with its size prefix), v3..v13."""
    r = Reader(frame)
    r.pos = 4
    api_key, version, _corr = r.i16(), r.i16(), r.i32()
    if api_key != API_PRODUCE or not 3 <= version <= 13:
        return []
    flexible = version >= 9
    r.take(max(0, r.i16()))  # client id
    if flexible:
        r.tagged_fields()
        r.take(max(0, r.uvarint() - 1))  # transactional id
    else:
        r.take(max(0, r.i16()))
    r.i16(), r.i32()  # acks, timeout
    out = []
    for _ in range(r.uvarint() - 1 if flexible else r.i32()):
        if version >= 13:
            topic = r.take(16).hex()
        elif flexible:
            topic = r.take(r.uvarint() - 1).decode()
        else:
            topic = r.take(r.i16()).decode()
        for _ in range(r.uvarint() - 1 if flexible else r.i32()):
            partition = r.i32()
            n = r.uvarint() - 1 if flexible else r.i32()
            records = r.take(n) if n > 0 else b""
            pos = 0
            while pos + 61 <= len(records):
                batch_len = struct.unpack_from(">i", records, pos + 8)[0]
                pid, epoch, seq, count = struct.unpack_from(">qhii", records, pos + 43)
                out.append((topic, partition, pid, epoch, seq, count))
                pos += 12 + batch_len
            if flexible:
                r.tagged_fields()
        if flexible:
            r.tagged_fields()
    return out


class ChaosProxy:
    def __init__(self, listen_port: int, upstream_port: int, *, seed=None,
                 kill_interval: tuple[float, float] = (0.3, 1.5),
                 drop_response_prob: float = 0.02, host: str = "127.0.0.1"):
        self.host = host
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.kill_interval = kill_interval
        self.drop_response_prob = drop_response_prob
        self.rng = random.Random(seed)
        self.chaos = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: dict[int, _Pair] = {}
        self._next_id = 0
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        # counters
        self.connections = 0
        self.upstream_refused = 0
        self.kills = 0  # chaos kills of a live connection
        self.kills_with_in_flight = 0  # ... that had requests waiting for a response
        self.dropped_responses = 0  # Produce responses thrown away (connection killed instead)
        self.produce_requests = 0
        self.requests = 0
        # idempotent batches (pid >= 0) by (topic, partition, pid, epoch, base seq, count)
        self._batches_seen: set[tuple] = set()
        self._batches_written: set[tuple] = set()  # in a request whose response was dropped
        self.batches_resent = 0  # sent again after having been sent before
        self.written_batches_resent = 0  # ... after the broker had executed the request
        self.parse_errors = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen_port}"

    def start(self) -> "ChaosProxy":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.listen_port))
        ls.listen(128)
        ls.settimeout(0.2)
        self._listener = ls
        for target, name in ((self._accept_loop, "proxy-accept"), (self._chaos_loop, "proxy-chaos")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        if self._listener:
            self._listener.close()
        for p in list(self._pairs.values()):
            p.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    def kill_all(self) -> int:
        """Tear down every live connection now (not counted as a chaos kill)."""
        n = 0
        for p in self.live():
            n += p.close(rst=True)
        return n

    def live(self) -> list[_Pair]:
        with self._lock:
            return list(self._pairs.values())

    def stats(self) -> dict:
        return {k: getattr(self, k) for k in (
            "connections", "upstream_refused", "kills", "kills_with_in_flight",
            "dropped_responses", "requests", "produce_requests", "batches_resent",
            "written_batches_resent", "parse_errors")}

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.pop(pair.ident, None)

    # -- threads ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                upstream = socket.create_connection((self.host, self.upstream_port), timeout=2)
                upstream.settimeout(None)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                self._count("upstream_refused")
                client.close()  # broker down: the client sees a disconnect, like a real one
                continue
            with self._lock:
                self._next_id += 1
                pair = _Pair(self, client, upstream, self._next_id)
                self._pairs[pair.ident] = pair
                self.connections += 1
            for target, name in ((self._pump_requests, "c2s"), (self._pump_responses, "s2c")):
                threading.Thread(target=target, args=(pair,), name=f"proxy-{pair.ident}-{name}",
                                 daemon=True).start()

    def _pump_requests(self, pair: _Pair) -> None:
        try:
            self._requests(pair)
        finally:
            pair.release(pair.client)

    def _pump_responses(self, pair: _Pair) -> None:
        try:
            self._responses(pair)
        finally:
            pair.release(pair.upstream)

    def _requests(self, pair: _Pair) -> None:
        buf = bytearray()
        while True:
            frames = _recv_frames(pair.client, buf)
            if frames is None:
                pair.close()
                return
            for f in frames:
                api_key = corr = None
                if len(f) >= 12:
                    api_key, _ver, corr = struct.unpack_from(">hhi", f, 4)
                with pair.lock:
                    if pair.closed:
                        return
                    if corr is not None:
                        pair.in_flight.add(corr)
                    if api_key == API_PRODUCE and self.chaos \
                            and self.rng.random() < self.drop_response_prob:
                        pair.doomed.add(corr)
                    pair.last_request = time.monotonic()
                self._count("requests")
                if api_key == API_PRODUCE:
                    self._count("produce_requests")
                    self._note_batches(pair, corr, f)
                try:
                    pair.upstream.sendall(f)
                except OSError:
                    pair.close()
                    return

    def _note_batches(self, pair: _Pair, corr: int, frame: bytes) -> None:
        try:
            batches = [b for b in produce_batches(frame) if b[2] >= 0]
        except (ValueError, struct.error, UnicodeDecodeError):
            self._count("parse_errors")
            return
        with self._lock:
            for b in batches:
                if b in self._batches_seen:
                    self.batches_resent += 1
                if b in self._batches_written:
                    self.written_batches_resent += 1
                self._batches_seen.add(b)
        if batches:
            with pair.lock:
                pair.batches[corr] = batches

    def _responses(self, pair: _Pair) -> None:
        buf = bytearray()
        while True:
            frames = _recv_frames(pair.upstream, buf)
            if frames is None:
                pair.close()
                return
            for f in frames:
                corr = struct.unpack_from(">i", f, 4)[0] if len(f) >= 8 else None
                with pair.lock:
                    if pair.closed:
                        return
                    pair.in_flight.discard(corr)
                    doomed = corr in pair.doomed
                    batches = pair.batches.pop(corr, ())
                if doomed:
                    with self._lock:
                        self._batches_written.update(batches)
                    # The broker executed the request; the client never hears about it.
                    if pair.close(rst=self.rng.random() < 0.5):
                        self._count("dropped_responses")
                    return
                try:
                    pair.client.sendall(f)
                except OSError:
                    pair.close()
                    return

    def _chaos_loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.kill_interval)):
            if not self.chaos:
                continue
            pairs = self.live()
            deadline = time.monotonic() + 0.5  # e.g. right after a kill: wait for a reconnect
            while not pairs and self.chaos and time.monotonic() < deadline \
                    and not self._stop.wait(0.02):
                pairs = self.live()
            if not pairs:
                continue
            busy = [p for p in pairs if p.in_flight]
            # Prefer connections with requests in flight; otherwise the most recently used one
            # (the connection the producer sends on, not an idle bootstrap connection).
            victim = (self.rng.choice(busy) if busy
                      else max(pairs, key=lambda p: p.last_request))
            had_in_flight = bool(victim.in_flight)
            if victim.close(rst=self.rng.random() < 0.5):
                self._count("kills")
                if had_in_flight:
                    self._count("kills_with_in_flight")
