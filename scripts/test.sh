#!/usr/bin/env bash
# Strata: the one test command.
#
#   ./scripts/test.sh            # install what's missing, build, cargo test, pytest tests/
#
# Environment knobs (all optional):
#   STRATA_SKIP_DEPS=1     don't touch apt / the virtualenv / tests/js/node_modules
#   STRATA_SKIP_CARGO=1    don't build or run cargo tests (use the existing target/ci/strata)
#   PYTEST_ARGS="..."      extra arguments for pytest (e.g. "-k kcat -x")
#
# Idempotent: apt packages are installed only when missing, the virtualenv is
# (re)created when its requirements changed, `npm ci` runs in tests/js only when
# node_modules is missing or package-lock.json changed, cargo builds incrementally.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\n==> %s\n' "$*"; }

# ----------------------------------------------------------------------------
# 1. apt packages (kcat is Debian bookworm's kcat 1.7.1 on librdkafka 2.0.2 —
#    an old client on purpose). Node.js and npm (for the kafkajs tests) only if
#    there is no `node` yet: a newer Node installed some other way is kept.
# ----------------------------------------------------------------------------
APT_PACKAGES=(kcat python3-venv)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    APT_PACKAGES+=(nodejs npm)
fi

install_apt() {
    local missing=()
    local p
    for p in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt packages present: ${APT_PACKAGES[*]}"
        return
    fi
    log "installing apt packages: ${missing[*]}"
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ----------------------------------------------------------------------------
# 2. Python virtualenv with pinned test dependencies.
# ----------------------------------------------------------------------------
VENV="$ROOT/.venv"
REQS="$ROOT/tests/requirements.txt"

setup_venv() {
    local py="${PYTHON:-python3}"
    local stamp="$VENV/.requirements.sha256"
    local want
    want="$(sha256sum "$REQS" | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null \
        && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "virtualenv up to date: $VENV"
        return
    fi
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "creating virtualenv $VENV"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
    fi
    log "installing python test dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$REQS"
    echo "$want" > "$stamp"
}

# ----------------------------------------------------------------------------
# 3. Node.js test dependencies (kafkajs, pinned by tests/js/package-lock.json).
# ----------------------------------------------------------------------------
JS_DIR="$ROOT/tests/js"

setup_node_modules() {
    local stamp="$JS_DIR/node_modules/.package-lock.sha256"
    local want
    want="$(sha256sum "$JS_DIR/package-lock.json" | cut -d' ' -f1)"
    if [ -d "$JS_DIR/node_modules" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "node modules up to date: $JS_DIR/node_modules"
        return
    fi
    log "installing node test dependencies (npm ci in tests/js)"
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
}

if [ "${STRATA_SKIP_DEPS:-0}" != "1" ]; then
    install_apt
    setup_venv
    setup_node_modules
fi

# ----------------------------------------------------------------------------
# 4. Rust: build once, run the workspace's unit/integration tests.
# ----------------------------------------------------------------------------
# A failing Rust test does not stop the run: the end-to-end tests still run, so one run
# reports everything; the script's exit status is non-zero if either part failed.
rust_rc=0
if [ "${STRATA_SKIP_CARGO:-0}" != "1" ]; then
    # One profile for the binary and every test binary (Cargo.toml's [profile.ci]: release
    # optimisation without LTO or debug info), so dependencies build once.
    log "cargo build --profile ci --workspace"
    cargo build --profile ci --workspace
    log "cargo test --profile ci --workspace"
    cargo test --profile ci --workspace --no-fail-fast || rust_rc=$?
fi

if [ ! -x "$ROOT/target/ci/strata" ]; then
    echo "error: $ROOT/target/ci/strata was not built" >&2
    exit 1
fi

# ----------------------------------------------------------------------------
# 5. End-to-end tests with real Kafka clients.
# ----------------------------------------------------------------------------
log "pytest tests/"
mkdir -p "$ROOT/.test-work"
export STRATA_TEST_BIN="$ROOT/target/ci/strata"
py_rc=0
# PYTEST_ARGS is split like shell words, so quoting works: PYTEST_ARGS="-k 'kcat or s3'"
eval "extra_pytest_args=(${PYTEST_ARGS:-})"
"$VENV/bin/python" -m pytest tests/ -v -ra --durations=15 "${extra_pytest_args[@]}" || py_rc=$?

if [ "$rust_rc" -ne 0 ] || [ "$py_rc" -ne 0 ]; then
    echo "FAILED: cargo test exit $rust_rc, pytest exit $py_rc" >&2
    exit 1
fi
