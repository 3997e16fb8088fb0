"""Fixtures for Strata's end-to-end tests.

Every test talks to a real `strata serve` process (see `Strata`; the binary is
`$STRATA_TEST_BIN`, by default `target/ci/strata` as ./scripts/test.sh builds it),
started on free loopback ports with a fresh data directory, and to real Kafka
clients (kcat, confluent-kafka, kafka-python).

Processes are always cleaned up: fixtures stop what they start, every child is
started with PR_SET_PDEATHSIG=SIGKILL (so it dies with the pytest process even
if pytest is killed), and an atexit hook kills whatever is left.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STRATA_BIN = Path(os.environ.get("STRATA_TEST_BIN", REPO / "target" / "ci" / "strata"))
WORK_ROOT = Path(os.environ.get("STRATA_TEST_WORK", REPO / ".test-work"))
RUN_DIR = WORK_ROOT / f"run-{os.getpid()}"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

# Every process started by the fixtures, for the atexit safety net.
_CHILDREN: list[subprocess.Popen] = []
# Every broker ever created in this session (for log tails on failure).
_BROKERS: list["Strata"] = []
_used_ports: set[int] = set()
_counter = itertools.count(1)


# ---------------------------------------------------------------------------
# process helpers
# ---------------------------------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setsid()  # own process group: terminal ^C goes to pytest, which cleans up


def _popen(cmd, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kw)
    _CHILDREN.append(proc)
    return proc


@atexit.register
def _kill_leftovers() -> None:
    for p in _CHILDREN:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


def free_port() -> int:
    """A currently free loopback TCP port, never handed out twice per session."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port")


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _tail(path: Path, lines: int = 80) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data[-200_000:].decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


class BrokerDied(AssertionError):
    pass


# ---------------------------------------------------------------------------
# the broker
# ---------------------------------------------------------------------------


class Strata:
    """One `strata serve` process with its own ports and data dir.

    `args` are extra CLI flags passed through verbatim; `env` extra environment
    variables. Ports and the data dir stay the same across restart(), so a
    restarted broker sees its old data and clients can reconnect.

    Start/stop/kill/restart must be called from the main thread (the child dies
    with the thread that forked it).
    """

    def __init__(self, workdir: Path, args=(), env=None, name: str | None = None):
        self.name = name or f"strata{next(_counter)}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.port = free_port()
        self.admin_port = free_port()
        self.args = [str(a) for a in args]
        self.env = dict(env or {})
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.last_active = 0.0
        self.exit_codes: list[int] = []
        _BROKERS.append(self)

    # -- addresses -----------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        return [
            str(STRATA_BIN), "serve",
            "--listen", self.bootstrap,
            "--advertise", self.bootstrap,
            "--data-dir", str(self.data_dir),
            "--admin-listen", f"127.0.0.1:{self.admin_port}",
            *self.args,
        ]

    # -- lifecycle -----------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> "Strata":
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> "Strata":
        """Starts the process without waiting for it to serve (cluster nodes start together:
        none serves before the metadata quorum has a leader)."""
        assert not self.alive(), f"{self.name} already running"
        if not STRATA_BIN.exists():
            pytest.fail(f"broker binary {STRATA_BIN} missing: run cargo build --profile ci")
        self.starts += 1
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("STRATA_") or k == "STRATA_LOG"}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain log files
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = _popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env, cwd=self.workdir)
        self.last_active = time.time()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        kafka_ok = health_ok = False
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerDied(f"{self.name} exited with {self.proc.returncode} during start-up\n"
                                 f"--- log tail ---\n{self.log_tail()}")
            if not kafka_ok:
                kafka_ok = tcp_accepts("127.0.0.1", self.port)
            if kafka_ok and not health_ok:
                try:
                    status, body = http_get(self.admin_url + "/healthz", timeout=1.0)
                    health_ok = status == 200
                    last = f"GET /healthz -> {status} {body[:100]!r}"
                except OSError as e:
                    last = f"GET /healthz -> {e}"
            if kafka_ok and health_ok:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready within {timeout}s (kafka port accepts: {kafka_ok}, "
                             f"{last})\n--- log tail ---\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Graceful shutdown: SIGTERM and wait. Fails if the broker does not exit in time."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self.last_active = time.time()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM "
                                 f"(SIGKILLed)\n--- log tail ---\n{self.log_tail()}")
        self.exit_codes.append(rc)
        self.last_active = time.time()
        return rc

    def kill(self) -> None:
        """SIGKILL, no chance to flush anything."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
            self.exit_codes.append(self.proc.returncode)
        self.last_active = time.time()

    def restart(self, kill: bool = False, timeout: float = START_TIMEOUT) -> "Strata":
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Fixture teardown: graceful stop (a hung shutdown is reported)."""
        if self.alive():
            self.stop()

    # -- observation ---------------------------------------------------------
    def assert_alive(self) -> None:
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise BrokerDied(f"{self.name} is not running (exit code {rc})\n"
                             f"--- log tail ---\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def healthz(self) -> tuple[int, bytes]:
        return http_get(self.admin_url + "/healthz")

    def metrics(self) -> str:
        status, body = http_get(self.admin_url + "/metrics")
        assert status == 200, f"GET /metrics -> {status}"
        return body.decode()

    def log_tail(self, lines: int = 80) -> str:
        return _tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"<Strata {self.name} {self.bootstrap} pid={self.pid}>"


class StrataFactory:
    """Creates brokers in one work dir and closes all of them at teardown."""

    def __init__(self, base: Path):
        self.base = base
        self.brokers: list[Strata] = []

    def __call__(self, *args, start: bool = True, env=None, name: str | None = None) -> Strata:
        flat: list[str] = []
        for a in args:
            if isinstance(a, (list, tuple)):
                flat.extend(str(x) for x in a)
            else:
                flat.append(str(a))
        n = name or f"strata{next(_counter)}"
        b = Strata(self.base / n, args=flat, env=env, name=n)
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def close(self) -> None:
        errors = []
        # All at once: a cluster node's shutdown may wait on the others' quorum.
        for b in self.brokers:
            if b.alive():
                b.proc.send_signal(signal.SIGTERM)
        for b in self.brokers:
            try:
                b.close()
            except Exception as e:  # keep closing the others
                errors.append(e)
        if errors:
            raise errors[0]


def _safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:80]


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def run_dir() -> Path:
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    # Leftovers of earlier runs whose process is gone.
    for old in WORK_ROOT.glob("run-*"):
        try:
            pid = int(old.name.split("-", 1)[1])
        except ValueError:
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    return RUN_DIR


@pytest.fixture
def strata_factory(request, run_dir):
    """Function-scoped: `strata_factory(*cli_args)` -> started Strata."""
    f = StrataFactory(run_dir / _safe_name(request.node.name))
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_strata_factory(request, run_dir):
    f = StrataFactory(run_dir / _safe_name(request.module.__name__))
    yield f
    f.close()


@pytest.fixture(scope="module")
def broker(module_strata_factory) -> Strata:
    """A default broker shared by the tests of one module."""
    return module_strata_factory()


class MotoS3:
    def __init__(self, port: int, proc: subprocess.Popen, log_path: Path):
        self.port = port
        self.proc = proc
        self.log_path = log_path
        self.endpoint = f"http://127.0.0.1:{port}"
        self.region = "us-east-1"
        self.bucket = "strata-test"

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def url(self, bucket: str | None = None) -> str:
        return f"s3://{bucket or self.bucket}?endpoint={self.endpoint}&region={self.region}"

    def list_keys(self, bucket: str | None = None) -> dict[str, int]:
        c = self.client()
        out: dict[str, int] = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out


@pytest.fixture(scope="session")
def moto_s3(run_dir):
    """An S3-compatible server (moto) on loopback, with bucket `strata-test`."""
    os.environ["AWS_ACCESS_KEY_ID"] = "test"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
    os.environ["AWS_REGION"] = "us-east-1"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.fail(f"{exe} missing: pip install 'moto[server]' (scripts/test.sh does)")
    port = free_port()
    log_path = run_dir / "moto_server.log"
    with open(log_path, "ab") as log:
        proc = _popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    s3 = MotoS3(port, proc, log_path)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            http_get(s3.endpoint + "/", timeout=1.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server not up within 30s:\n{_tail(log_path)}")
            time.sleep(0.1)
    s3.create_bucket(s3.bucket)
    yield s3
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ---------------------------------------------------------------------------
# broker log tails in failure reports
# ---------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._strata_t0 = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    t0 = getattr(item, "_strata_t0", 0.0)
    for b in _BROKERS:
        if b.starts and (b.alive() or b.last_active >= t0):
            state = "running" if b.alive() else f"exited {b.proc.returncode if b.proc else None}"
            rep.sections.append((f"strata log tail: {b.name} ({state}, {b.log_path})",
                                 b.log_tail(60)))


def pytest_sessionfinish(session, exitstatus):
    # Keep the work dir (broker logs, data dirs) only when something failed.
    if exitstatus == 0 and os.environ.get("STRATA_TEST_KEEP") != "1":
        shutil.rmtree(RUN_DIR, ignore_errors=True)
