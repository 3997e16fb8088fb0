"""A tiny hand encoder/decoder for a few Kafka request frames, for bad-input tests.

Only what the tests need: request headers v1/v2, ApiVersions v0-v3 responses,
Produce v3-v8 (non-flexible) requests/responses, InitProducerId v0-v5, record batches (magic 2,
optionally with producer id, epoch and base sequence) and
legacy message sets (magic 0/1), and the classic consumer-group APIs at one fixed,
non-flexible version each (FindCoordinator v2, JoinGroup v5, SyncGroup v3, Heartbeat v3,
LeaveGroup v3, OffsetCommit v7, OffsetFetch v5). Written from the Kafka protocol guide
and the message specs (clients/src/main/resources/common/message/*.json).
"""

from __future__ import annotations

import socket
import struct
import time
import zlib

API_PRODUCE = 0
API_METADATA = 3
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_FIND_COORDINATOR = 10
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_INIT_PRODUCER_ID = 22

# --- crc32c (Castagnoli), table driven --------------------------------------
_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --- primitive encoders ------------------------------------------------------
def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def u32(v): return struct.pack(">I", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def nbytes(b: bytes | None) -> bytes:
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(v: int) -> bytes:  # zigzag
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


# --- decoding ----------------------------------------------------------------
class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"short response: need {n} bytes at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self): return struct.unpack(">b", self.take(1))[0]
    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def uvarint(self):
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.pos


# --- frames ------------------------------------------------------------------
def request_header(api_key: int, version: int, correlation_id: int, client_id: str | None = "e2e-wire",
                   flexible: bool = False) -> bytes:
    h = i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)
    if flexible:
        h += uvarint(0)  # empty tagged fields
    return h


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


class Conn:
    """A raw Kafka connection."""

    def __init__(self, bootstrap: str, timeout: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.corr = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def request(self, api_key: int, version: int, body: bytes, flexible_header: bool = False) -> int:
        self.corr += 1
        self.send_raw(frame(request_header(api_key, version, self.corr, flexible=flexible_header) + body))
        return self.corr

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        (n,) = struct.unpack(">i", self.recv_exact(4))
        assert 0 <= n < 64 << 20, f"implausible response size {n}"
        return self.recv_exact(n)

    def response(self, corr: int) -> Reader:
        r = Reader(self.recv_frame())
        got = r.i32()
        assert got == corr, f"response correlation id {got}, expected {corr}"
        return r

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True if the broker closes the connection within `timeout` (EOF or reset),
        False if it stays open that long. Data the broker sends first is skipped."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
        return False


# --- ApiVersions -------------------------------------------------------------
def api_versions(conn: Conn, version: int = 0,
                 parse_version: int | None = None) -> tuple[int, dict[int, tuple[int, int]]]:
    """Send ApiVersions vN, parse the response (v0 layout or flexible v3); an
    UNSUPPORTED_VERSION answer comes in the v0 layout (parse_version=0)."""
    if version >= 3:
        body = compact_string("e2e-wire") + compact_string("0.1") + uvarint(0)
        corr = conn.request(API_VERSIONS, version, body, flexible_header=True)
    else:
        corr = conn.request(API_VERSIONS, version, b"")
    r = conn.response(corr)  # ApiVersions responses always use response header v0
    return parse_api_versions(r, version if parse_version is None else parse_version)


def parse_api_versions(r: Reader, version: int) -> tuple[int, dict[int, tuple[int, int]]]:
    err = r.i16()
    apis = {}
    if version >= 3:
        n = r.uvarint() - 1
        for _ in range(n):
            k, lo, hi = r.i16(), r.i16(), r.i16()
            r.tagged_fields()
            apis[k] = (lo, hi)
    else:
        n = r.i32()
        for _ in range(n):
            k, lo, hi = r.i16(), r.i16(), r.i16()
            apis[k] = (lo, hi)
    return err, apis


# --- records -----------------------------------------------------------------
def record(offset_delta: int, ts_delta: int, key: bytes | None, value: bytes | None,
           headers=()) -> bytes:
    body = i8(0) + varint(ts_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hk = hk.encode()
        body += varint(len(hk)) + hk
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + body


def record_batch(values, keys=None, base_timestamp: int | None = None, corrupt_crc: bool = False,
                 attributes: int = 0, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1) -> bytes:
    """An uncompressed magic-2 record batch (base offset 0; by default no producer id,
    else an idempotent batch of `producer_id`/`producer_epoch` starting at `base_sequence`)."""
    ts = int(time.time() * 1000) if base_timestamp is None else base_timestamp
    keys = keys or [None] * len(values)
    recs = b"".join(record(i, 0, k, v) for i, (k, v) in enumerate(zip(keys, values)))
    after_crc = (i16(attributes) + i32(len(values) - 1) + i64(ts) + i64(ts) + i64(producer_id)
                 + i16(producer_epoch) + i32(base_sequence) + i32(len(values)) + recs)
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    # batchLength counts from partitionLeaderEpoch to the end.
    tail = i32(-1) + i8(2) + u32(crc) + after_crc
    return i64(0) + i32(len(tail)) + tail


def legacy_message_set(values, magic: int = 1) -> bytes:
    """A message set of magic 0 or 1 messages (what pre-0.11 clients send)."""
    out = b""
    ts = int(time.time() * 1000)
    for i, v in enumerate(values):
        body = i8(magic) + i8(0)
        if magic == 1:
            body += i64(ts)
        body += nbytes(None) + nbytes(v)
        msg = u32(zlib.crc32(body) & 0xFFFFFFFF) + body
        out += i64(i) + i32(len(msg)) + msg
    return out


# --- Produce v3..v8 ----------------------------------------------------------
def produce_body(topic: str, partition: int, records: bytes, acks: int = -1,
                 timeout_ms: int = 10000) -> bytes:
    return (string(None) + i16(acks) + i32(timeout_ms)
            + i32(1) + string(topic) + i32(1) + i32(partition) + nbytes(records))


def parse_produce_response(r: Reader, version: int) -> dict[tuple[str, int], dict]:
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = {"partition": r.i32(), "error_code": r.i16(), "base_offset": r.i64()}
            if version >= 2:
                p["log_append_time"] = r.i64()
            if version >= 5:
                p["log_start_offset"] = r.i64()
            if version >= 8:
                errs = []
                for _ in range(r.i32()):
                    errs.append((r.i32(), r.string()))
                p["record_errors"] = errs
                p["error_message"] = r.string()
            out[(name, p["partition"])] = p
    if version >= 1:
        r.i32()  # throttle_time_ms
    return out


def produce(conn: Conn, version: int, topic: str, partition: int, records: bytes,
            acks: int = -1) -> dict:
    assert 3 <= version <= 8, "only non-flexible Produce versions 3..8 are encoded here"
    corr = conn.request(API_PRODUCE, version, produce_body(topic, partition, records, acks))
    res = parse_produce_response(conn.response(corr), version)
    assert (topic, partition) in res, f"no response for {topic}-{partition}: {res}"
    return res[(topic, partition)]


def pick_produce_version(apis: dict[int, tuple[int, int]]) -> int:
    lo, hi = apis[API_PRODUCE]
    v = min(hi, 8)
    assert v >= max(lo, 3), f"broker Produce versions {lo}..{hi} have no non-flexible v3..v8"
    return v


# --- InitProducerId v0..v5 --------------------------------------------------------------
# Request: TransactionalId (nullable), TransactionTimeoutMs, v3+: ProducerId, ProducerEpoch;
# flexible (compact strings, tagged fields, request header v2 / response header v1) from v2.
# Response: ThrottleTimeMs, ErrorCode, ProducerId, ProducerEpoch.
def init_producer_id(conn: Conn, version: int = 0, transactional_id: str | None = None,
                     transaction_timeout_ms: int = 60000, producer_id: int = -1,
                     producer_epoch: int = -1) -> dict:
    assert 0 <= version <= 5, version
    flexible = version >= 2
    body = (compact_string(transactional_id) if flexible else string(transactional_id))
    body += i32(transaction_timeout_ms)
    if version >= 3:
        body += i64(producer_id) + i16(producer_epoch)
    if flexible:
        body += uvarint(0)
    corr = conn.request(API_INIT_PRODUCER_ID, version, body, flexible_header=flexible)
    r = conn.response(corr)
    if flexible:
        r.tagged_fields()  # response header v1
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "producer_id": r.i64(),
           "producer_epoch": r.i16()}
    if flexible:
        r.tagged_fields()
    assert r.remaining() == 0, f"InitProducerId v{version}: {r.remaining()} unread bytes"
    return out


# --- consumer groups (classic protocol), fixed non-flexible versions -----------------------
# The last non-flexible version of each API (OffsetFetch: v6+ is flexible, so v5).
GROUP_API_VERSIONS = {
    API_FIND_COORDINATOR: 2,
    API_JOIN_GROUP: 5,
    API_SYNC_GROUP: 3,
    API_HEARTBEAT: 3,
    API_LEAVE_GROUP: 3,
    API_OFFSET_COMMIT: 7,
    API_OFFSET_FETCH: 5,
}


def array(items, enc) -> bytes:
    if items is None:
        return i32(-1)
    items = list(items)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def read_array(r: Reader, dec) -> list | None:
    n = r.i32()
    return None if n < 0 else [dec(r) for _ in range(n)]


def read_nbytes(r: Reader) -> bytes | None:
    n = r.i32()
    return None if n < 0 else r.take(n)


def consumer_subscription(topics, user_data: bytes | None = None) -> bytes:
    """ConsumerProtocolSubscription v0: what a Java consumer puts in JoinGroup metadata."""
    return i16(0) + array(topics, string) + nbytes(user_data)


def consumer_assignment(assignment: dict[str, list[int]], user_data: bytes | None = None) -> bytes:
    """ConsumerProtocolAssignment v0: what a leader puts in SyncGroup for each member."""
    return (i16(0) + array(sorted(assignment.items()),
                           lambda tp: string(tp[0]) + array(tp[1], i32)) + nbytes(user_data))


# FindCoordinator v2: Key, KeyType -> ThrottleTimeMs, ErrorCode, ErrorMessage, NodeId, Host, Port
def find_coordinator_body(key: str, key_type: int = 0) -> bytes:
    return string(key) + i8(key_type)


def parse_find_coordinator(r: Reader) -> dict:
    return {"throttle_time_ms": r.i32(), "error_code": r.i16(), "error_message": r.string(),
            "node_id": r.i32(), "host": r.string(), "port": r.i32()}


# JoinGroup v5: GroupId, SessionTimeoutMs, RebalanceTimeoutMs, MemberId, GroupInstanceId,
# ProtocolType, Protocols[Name, Metadata]
def join_group_body(group_id: str, member_id: str = "", protocol_type: str = "consumer",
                    protocols=(("range", b""),), session_timeout_ms: int = 10000,
                    rebalance_timeout_ms: int = 10000, group_instance_id: str | None = None) -> bytes:
    return (string(group_id) + i32(session_timeout_ms) + i32(rebalance_timeout_ms) + string(member_id)
            + string(group_instance_id) + string(protocol_type)
            + array(protocols, lambda pm: string(pm[0]) + nbytes(pm[1])))


# -> ThrottleTimeMs, ErrorCode, GenerationId, ProtocolName, Leader, MemberId,
#    Members[MemberId, GroupInstanceId, Metadata]
def parse_join_group(r: Reader) -> dict:
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "generation_id": r.i32(),
           "protocol_name": r.string(), "leader": r.string(), "member_id": r.string()}
    out["members"] = read_array(r, lambda r: {"member_id": r.string(), "group_instance_id": r.string(),
                                              "metadata": read_nbytes(r)})
    return out


# SyncGroup v3: GroupId, GenerationId, MemberId, GroupInstanceId, Assignments[MemberId, Assignment]
def sync_group_body(group_id: str, generation_id: int, member_id: str,
                    assignments: dict[str, bytes] | None = None,
                    group_instance_id: str | None = None) -> bytes:
    return (string(group_id) + i32(generation_id) + string(member_id) + string(group_instance_id)
            + array(sorted((assignments or {}).items()), lambda ma: string(ma[0]) + nbytes(ma[1])))


# -> ThrottleTimeMs, ErrorCode, Assignment
def parse_sync_group(r: Reader) -> dict:
    return {"throttle_time_ms": r.i32(), "error_code": r.i16(), "assignment": read_nbytes(r)}


# Heartbeat v3: GroupId, GenerationId, MemberId, GroupInstanceId -> ThrottleTimeMs, ErrorCode
def heartbeat_body(group_id: str, generation_id: int, member_id: str,
                   group_instance_id: str | None = None) -> bytes:
    return string(group_id) + i32(generation_id) + string(member_id) + string(group_instance_id)


def parse_heartbeat(r: Reader) -> dict:
    return {"throttle_time_ms": r.i32(), "error_code": r.i16()}


# LeaveGroup v3: GroupId, Members[MemberId, GroupInstanceId]
def leave_group_body(group_id: str, member_ids) -> bytes:
    return string(group_id) + array(member_ids, lambda m: string(m) + string(None))


# -> ThrottleTimeMs, ErrorCode, Members[MemberId, GroupInstanceId, ErrorCode]
def parse_leave_group(r: Reader) -> dict:
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16()}
    out["members"] = read_array(r, lambda r: {"member_id": r.string(), "group_instance_id": r.string(),
                                              "error_code": r.i16()})
    return out


# OffsetCommit v7: GroupId, GenerationId, MemberId, GroupInstanceId,
# Topics[Name, Partitions[PartitionIndex, CommittedOffset, CommittedLeaderEpoch, CommittedMetadata]]
def offset_commit_body(group_id: str, generation_id: int, member_id: str,
                       offsets: dict[str, dict[int, int | tuple[int, str | None]]],
                       group_instance_id: str | None = None) -> bytes:
    """offsets: {topic: {partition: offset or (offset, metadata)}}."""
    def part(item):
        p, v = item
        off, meta = v if isinstance(v, tuple) else (v, "")
        return i32(p) + i64(off) + i32(-1) + string(meta)

    return (string(group_id) + i32(generation_id) + string(member_id) + string(group_instance_id)
            + array(offsets.items(), lambda t: string(t[0]) + array(sorted(t[1].items()), part)))


# -> ThrottleTimeMs, Topics[Name, Partitions[PartitionIndex, ErrorCode]]
def parse_offset_commit(r: Reader) -> dict[tuple[str, int], int]:
    r.i32()
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(name, p)] = r.i16()
    return out


# OffsetFetch v5: GroupId, Topics[Name, PartitionIndexes] (null = all topics)
def offset_fetch_body(group_id: str, topics: dict[str, list[int]] | None) -> bytes:
    return string(group_id) + array(None if topics is None else topics.items(),
                                    lambda t: string(t[0]) + array(t[1], i32))


# -> ThrottleTimeMs, Topics[Name, Partitions[PartitionIndex, CommittedOffset,
#    CommittedLeaderEpoch, Metadata, ErrorCode]], ErrorCode
def parse_offset_fetch(r: Reader) -> dict:
    r.i32()
    parts = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            parts[(name, p)] = {"offset": r.i64(), "leader_epoch": r.i32(), "metadata": r.string(),
                                "error_code": r.i16()}
    return {"partitions": parts, "error_code": r.i16()}


_GROUP_PARSERS = {
    API_FIND_COORDINATOR: parse_find_coordinator,
    API_JOIN_GROUP: parse_join_group,
    API_SYNC_GROUP: parse_sync_group,
    API_HEARTBEAT: parse_heartbeat,
    API_LEAVE_GROUP: parse_leave_group,
    API_OFFSET_COMMIT: parse_offset_commit,
    API_OFFSET_FETCH: parse_offset_fetch,
}


def group_send(conn: Conn, api_key: int, body: bytes) -> int:
    """Send a group API request at its fixed version without waiting; returns the correlation id."""
    return conn.request(api_key, GROUP_API_VERSIONS[api_key], body)


def group_recv(conn: Conn, api_key: int, corr: int):
    r = conn.response(corr)
    out = _GROUP_PARSERS[api_key](r)
    assert r.remaining() == 0, f"api {api_key}: {r.remaining()} unread bytes at the end of the response"
    return out


def group_call(conn: Conn, api_key: int, body: bytes):
    return group_recv(conn, api_key, group_send(conn, api_key, body))


def check_group_api_versions(apis: dict[int, tuple[int, int]]) -> None:
    """Fails unless the broker advertises every group API at the version encoded here."""
    missing = {k: v for k, v in GROUP_API_VERSIONS.items()
               if k not in apis or not apis[k][0] <= v <= apis[k][1]}
    assert not missing, (f"broker does not advertise these (api key: version) pairs: {missing}; "
                         f"advertised: { {k: apis.get(k) for k in GROUP_API_VERSIONS} }")


# =========================================================================================
# Transactions (KIP-98) and transactional reads: ListOffsets v2-v5 with an isolation level,
# transactional Produce, AddPartitionsToTxn v0-v3, AddOffsetsToTxn v0-v3, EndTxn v0-v5,
# TxnOffsetCommit v0-v3, WriteTxnMarkers v1-v2, DescribeTransactions v0, ListTransactions v0-v1.
# Each function takes the version and encodes the flexible (compact strings and arrays, tagged
# fields, request header v2 / response header v1) or the classic layout as the spec says.
# =========================================================================================
API_LIST_OFFSETS = 2
API_ADD_PARTITIONS_TO_TXN = 24
API_ADD_OFFSETS_TO_TXN = 25
API_END_TXN = 26
API_WRITE_TXN_MARKERS = 27
API_TXN_OFFSET_COMMIT = 28
API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66

# Record batch attribute bits.
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20

ISOLATION_READ_UNCOMMITTED = 0
ISOLATION_READ_COMMITTED = 1

# First version of each API that is flexible.
_FLEXIBLE_FROM = {
    API_LIST_OFFSETS: 6,
    API_ADD_PARTITIONS_TO_TXN: 3,
    API_ADD_OFFSETS_TO_TXN: 3,
    API_END_TXN: 3,
    API_WRITE_TXN_MARKERS: 1,
    API_TXN_OFFSET_COMMIT: 3,
    API_DESCRIBE_TRANSACTIONS: 0,
    API_LIST_TRANSACTIONS: 0,
}


def compact_array(items, enc) -> bytes:
    if items is None:
        return uvarint(0)
    items = list(items)
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


def any_string(s: str | None, flexible: bool) -> bytes:
    return compact_string(s) if flexible else string(s)


def any_array(items, enc, flexible: bool) -> bytes:
    return compact_array(items, enc) if flexible else array(items, enc)


def tags(flexible: bool) -> bytes:
    """An empty tagged-field section (flexible versions only)."""
    return uvarint(0) if flexible else b""


def read_any_string(r: Reader, flexible: bool):
    return r.compact_string() if flexible else r.string()


def read_any_array(r: Reader, dec, flexible: bool) -> list | None:
    if not flexible:
        return read_array(r, dec)
    n = r.uvarint()
    return None if n == 0 else [dec(r) for _ in range(n - 1)]


def read_tags(r: Reader, flexible: bool) -> None:
    if flexible:
        r.tagged_fields()


def is_flexible(api_key: int, version: int) -> bool:
    return version >= _FLEXIBLE_FROM[api_key]


def call(conn: Conn, api_key: int, version: int, body: bytes) -> Reader:
    """Send one request of an API listed in _FLEXIBLE_FROM and return the response body (after
    the response header, whose tagged fields are skipped for flexible versions)."""
    flexible = is_flexible(api_key, version)
    corr = conn.request(api_key, version, body, flexible_header=flexible)
    r = conn.response(corr)
    read_tags(r, flexible)
    return r


def _done(r: Reader, what: str) -> None:
    assert r.remaining() == 0, f"{what}: {r.remaining()} unread bytes at the end of the response"


# --- record batches of transactions --------------------------------------------------------
def txn_batch(values, producer_id: int, producer_epoch: int, base_sequence: int, keys=None) -> bytes:
    """A transactional batch (attributes bit 4) of `values`."""
    return record_batch(values, keys=keys, attributes=ATTR_TRANSACTIONAL, producer_id=producer_id,
                        producer_epoch=producer_epoch, base_sequence=base_sequence)


def control_batch(commit: bool, producer_id: int, producer_epoch: int,
                  coordinator_epoch: int = 0) -> bytes:
    """A transaction marker batch (attributes 0x30) as a coordinator writes it: one control record,
    key = version 0 + type (0 abort, 1 commit), value = version 0 + coordinator epoch."""
    key = i16(0) + i16(1 if commit else 0)
    value = i16(0) + i32(coordinator_epoch)
    return record_batch([value], keys=[key], attributes=ATTR_TRANSACTIONAL | ATTR_CONTROL,
                        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=-1)


# --- transactional Produce v3..v8 ---------------------------------------------------------
def produce_txn(conn: Conn, version: int, topic: str, partition: int, records: bytes,
                transactional_id: str | None, acks: int = -1, timeout_ms: int = 10000) -> dict:
    """Produce with the request's TransactionalId field set (v3+)."""
    assert 3 <= version <= 8, "only non-flexible Produce versions 3..8 are encoded here"
    body = (string(transactional_id) + i16(acks) + i32(timeout_ms)
            + i32(1) + string(topic) + i32(1) + i32(partition) + nbytes(records))
    corr = conn.request(API_PRODUCE, version, body)
    res = parse_produce_response(conn.response(corr), version)
    assert (topic, partition) in res, f"no response for {topic}-{partition}: {res}"
    return res[(topic, partition)]


# --- ListOffsets v2..v5 ---------------------------------------------------------------------
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


def list_offsets(conn: Conn, topic: str, partitions, isolation_level: int, version: int = 4,
                 timestamp: int = LATEST_TIMESTAMP) -> dict[int, dict]:
    """ListOffsets for `partitions` of one topic -> {partition: {error_code, timestamp, offset,
    leader_epoch}}. With isolation 1 (READ_COMMITTED) and the latest timestamp Kafka answers the
    last stable offset, with 0 the high watermark."""
    assert 2 <= version <= 5, "only non-flexible ListOffsets versions with an isolation level (2..5)"

    def part(p):
        return i32(p) + (i32(-1) if version >= 4 else b"") + i64(timestamp)

    body = i32(-1) + i8(isolation_level) + array([topic], lambda t: string(t) + array(partitions, part))
    r = call(conn, API_LIST_OFFSETS, version, body)
    r.i32()  # throttle
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = {"partition": r.i32(), "error_code": r.i16(), "timestamp": r.i64(), "offset": r.i64()}
            p["leader_epoch"] = r.i32() if version >= 4 else -1
            if name == topic:
                out[p["partition"]] = p
    _done(r, f"ListOffsets v{version}")
    return out


# --- AddPartitionsToTxn v0..v3 --------------------------------------------------------------
def add_partitions_to_txn(conn: Conn, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: dict[str, list[int]], version: int = 3) -> dict[tuple[str, int], int]:
    """-> {(topic, partition): error code}."""
    assert 0 <= version <= 3, "client versions 0..3 only (v4+ is the broker-to-broker batch form)"
    f = is_flexible(API_ADD_PARTITIONS_TO_TXN, version)
    body = (any_string(transactional_id, f) + i64(producer_id) + i16(producer_epoch)
            + any_array(partitions.items(),
                        lambda t: any_string(t[0], f) + any_array(t[1], i32, f) + tags(f), f)
            + tags(f))
    r = call(conn, API_ADD_PARTITIONS_TO_TXN, version, body)
    r.i32()
    out = read_partition_codes(r, f)
    read_tags(r, f)
    _done(r, f"AddPartitionsToTxn v{version}")
    return out


def read_partition_codes(r: Reader, f: bool) -> dict:
    """An array of topics, each an array of (partition, error code): {(topic, partition): code}."""
    out = {}

    def topic_result(r):
        name = read_any_string(r, f)

        def part(r):
            p, code = r.i32(), r.i16()
            read_tags(r, f)
            out[(name, p)] = code

        read_any_array(r, part, f)
        read_tags(r, f)

    read_any_array(r, topic_result, f)
    return out


# --- AddOffsetsToTxn v0..v4 -----------------------------------------------------------------
def add_offsets_to_txn(conn: Conn, transactional_id: str, producer_id: int, producer_epoch: int,
                       group_id: str, version: int = 3) -> int:
    """-> error code."""
    f = is_flexible(API_ADD_OFFSETS_TO_TXN, version)
    body = (any_string(transactional_id, f) + i64(producer_id) + i16(producer_epoch)
            + any_string(group_id, f) + tags(f))
    r = call(conn, API_ADD_OFFSETS_TO_TXN, version, body)
    r.i32()
    code = r.i16()
    read_tags(r, f)
    _done(r, f"AddOffsetsToTxn v{version}")
    return code


# --- EndTxn v0..v5 --------------------------------------------------------------------------
def end_txn(conn: Conn, transactional_id: str, producer_id: int, producer_epoch: int,
            committed: bool, version: int = 3) -> dict:
    """-> {error_code, producer_id, producer_epoch} (the last two from v5 only, else -1)."""
    f = is_flexible(API_END_TXN, version)
    body = (any_string(transactional_id, f) + i64(producer_id) + i16(producer_epoch)
            + i8(1 if committed else 0) + tags(f))
    r = call(conn, API_END_TXN, version, body)
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "producer_id": -1, "producer_epoch": -1}
    if version >= 5:
        out["producer_id"], out["producer_epoch"] = r.i64(), r.i16()
    read_tags(r, f)
    _done(r, f"EndTxn v{version}")
    return out


# --- TxnOffsetCommit v0..v3 -----------------------------------------------------------------
def txn_offset_commit(conn: Conn, transactional_id: str, group_id: str, producer_id: int,
                      producer_epoch: int, offsets: dict[str, dict[int, int]], version: int = 3,
                      generation_id: int = -1, member_id: str = "",
                      group_instance_id: str | None = None) -> dict[tuple[str, int], int]:
    """offsets: {topic: {partition: offset}} -> {(topic, partition): error code}."""
    assert 0 <= version <= 4, version
    f = is_flexible(API_TXN_OFFSET_COMMIT, version)

    def part(item):
        p, off = item
        return (i32(p) + i64(off) + (i32(-1) if version >= 2 else b"") + any_string("", f)
                + tags(f))

    body = (any_string(transactional_id, f) + any_string(group_id, f) + i64(producer_id)
            + i16(producer_epoch))
    if version >= 3:
        body += i32(generation_id) + any_string(member_id, f) + any_string(group_instance_id, f)
    body += any_array(offsets.items(),
                      lambda t: any_string(t[0], f) + any_array(sorted(t[1].items()), part, f) + tags(f), f)
    body += tags(f)
    r = call(conn, API_TXN_OFFSET_COMMIT, version, body)
    r.i32()
    out = read_partition_codes(r, f)
    read_tags(r, f)
    _done(r, f"TxnOffsetCommit v{version}")
    return out


# --- WriteTxnMarkers v1..v2 (flexible) --------------------------------------------------------
def write_txn_markers(conn: Conn, markers, version: int = 1) -> dict[int, dict[tuple[str, int], int]]:
    """markers: [(producer_id, producer_epoch, committed, {topic: [partitions]}, coordinator_epoch)]
    -> {producer_id: {(topic, partition): error code}}."""
    assert version in (1, 2), "WriteTxnMarkers v1 is Kafka 4's baseline"

    def marker(m):
        pid, epoch, committed, topics, coord_epoch = m
        out = (i64(pid) + i16(epoch) + i8(1 if committed else 0)
               + compact_array(topics.items(),
                               lambda t: compact_string(t[0]) + compact_array(t[1], i32) + uvarint(0))
               + i32(coord_epoch))
        if version >= 2:
            out += i8(0)  # TransactionVersion: legacy
        return out + uvarint(0)

    r = call(conn, API_WRITE_TXN_MARKERS, version, compact_array(markers, marker) + uvarint(0))
    out: dict[int, dict[tuple[str, int], int]] = {}

    def marker_result(r):
        pid = r.i64()
        res = out.setdefault(pid, {})

        def topic_result(r):
            name = r.compact_string()

            def part(r):
                p, code = r.i32(), r.i16()
                r.tagged_fields()
                res[(name, p)] = code

            read_any_array(r, part, True)
            r.tagged_fields()

        read_any_array(r, topic_result, True)
        r.tagged_fields()

    read_any_array(r, marker_result, True)
    r.tagged_fields()
    _done(r, f"WriteTxnMarkers v{version}")
    return out


# --- DescribeTransactions v0 / ListTransactions v0..v1 (flexible) ---------------------------
def describe_transactions(conn: Conn, transactional_ids, version: int = 0) -> dict[str, dict]:
    """-> {transactional_id: {error_code, state, timeout_ms, start_time_ms, producer_id,
    producer_epoch, partitions: {topic: [partitions]}}}."""
    body = compact_array(transactional_ids, compact_string) + uvarint(0)
    r = call(conn, API_DESCRIBE_TRANSACTIONS, version, body)
    r.i32()
    out = {}

    def state(r):
        s = {"error_code": r.i16(), "transactional_id": r.compact_string(), "state": r.compact_string(),
             "timeout_ms": r.i32(), "start_time_ms": r.i64(), "producer_id": r.i64(),
             "producer_epoch": r.i16(), "partitions": {}}

        def topic(r):
            name = r.compact_string()
            s["partitions"][name] = sorted(read_any_array(r, lambda r: r.i32(), True) or [])
            r.tagged_fields()

        read_any_array(r, topic, True)
        r.tagged_fields()
        out[s["transactional_id"]] = s

    read_any_array(r, state, True)
    r.tagged_fields()
    _done(r, f"DescribeTransactions v{version}")
    return out


def list_transactions(conn: Conn, state_filters=(), producer_id_filters=(), version: int = 0,
                      duration_filter_ms: int = -1) -> dict:
    """-> {error_code, unknown_state_filters, transactions: {transactional_id: (producer_id, state)}}."""
    body = compact_array(state_filters, compact_string) + compact_array(producer_id_filters, i64)
    if version >= 1:
        body += i64(duration_filter_ms)
    body += uvarint(0)
    r = call(conn, API_LIST_TRANSACTIONS, version, body)
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16()}
    out["unknown_state_filters"] = read_any_array(r, lambda r: r.compact_string(), True) or []
    txns = {}

    def state(r):
        tid, pid, st = r.compact_string(), r.i64(), r.compact_string()
        r.tagged_fields()
        txns[tid] = (pid, st)

    read_any_array(r, state, True)
    r.tagged_fields()
    out["transactions"] = txns
    _done(r, f"ListTransactions v{version}")
    return out


def find_coordinator(conn: Conn, key: str, key_type: int = 0) -> dict:
    """FindCoordinator v2 (key_type 0 = group, 1 = transactional id)."""
    return group_call(conn, API_FIND_COORDINATOR, find_coordinator_body(key, key_type))
