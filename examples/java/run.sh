#!/usr/bin/env bash
# The Java examples against the Python servers, in one command (from anywhere):
#
#   bash examples/java/run.sh
#
# Builds the Java client if target/classes is missing or older than its sources, then
#  1. starts examples/calculator/server.py on a free port and runs CalculatorClient.java;
#  2. makes throw-away certificates and a user file in a temporary directory, starts
#     examples/authservice/server.py (TLS) on a free port, and runs NotesClient.java as alice
#     (right password, then a wrong one, which must be refused).
# Every server it started is stopped on exit. Environment: PYTHON (default .venv/bin/python),
# JAVA (default java on PATH; Java 17+), PBROKER_SKIP_BUILD=1 to use target/classes as it is
# (the JUnit test ExamplesTest, which runs this script inside a Maven build, sets it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
JAVA="${JAVA:-java}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

CLASSES="$ROOT/clients/java/target/classes"
if [ "${PBROKER_SKIP_BUILD:-}" != 1 ] && { [ ! -f "$CLASSES/org/pbroker/PBClient.class" ] ||
        [ -n "$(find "$ROOT/clients/java/src/main" -newer "$CLASSES/org/pbroker/PBClient.class" -name '*.java' | head -1)" ]; }; then
    echo "run.sh: building the Java client" >&2
    bash "$ROOT/clients/java/build.sh" compile
fi
MSGPACK=/usr/share/java/msgpack-core.jar
[ -f "$MSGPACK" ] || MSGPACK=/usr/share/maven-repo/org/msgpack/msgpack-core/debian/msgpack-core-debian.jar
CP="$CLASSES:$MSGPACK"

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 143" TERM INT

# start_server LOG COMMAND...: run it in the background, wait for "listening on HOST:PORT",
# and set PORT.
start_server() {
    local log="$1"
    shift
    : >"$log"  # exists before the poll below reads it (the background job opens it later)
    "$@" >"$log" 2>&1 &
    PIDS+=("$!")
    local pid=$! i
    for i in $(seq 300); do
        PORT="$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$log")"
        [ -n "$PORT" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "run.sh: server did not start: $*" >&2
    cat "$log" >&2
    exit 1
}

echo "== calculator: Java client, Python server"
start_server "$TMP/calculator.log" "$PY" examples/calculator/server.py tcp:0:interface=127.0.0.1
"$JAVA" -cp "$CP" examples/java/CalculatorClient.java 127.0.0.1 "$PORT"

echo "== authservice: Java client logs in over TLS"
"$PY" -m net.tls make-dev-certs "$TMP/certs" >/dev/null
printf '%s\n' 'alice-pw' | "$PY" -m cred.userfile "$TMP/users.db" add alice --password-stdin >/dev/null
start_server "$TMP/authservice.log" "$PY" examples/authservice/server.py \
    --users "$TMP/users.db" --certs "$TMP/certs" --port 0 --interface 127.0.0.1
PBROKER_PASSWORD=alice-pw "$JAVA" -cp "$CP" examples/java/NotesClient.java \
    localhost "$PORT" "$TMP/certs/ca.pem" alice "a note from Java"
if PBROKER_PASSWORD=wrong "$JAVA" -cp "$CP" examples/java/NotesClient.java \
        localhost "$PORT" "$TMP/certs/ca.pem" alice; then
    echo "run.sh: a wrong password was accepted" >&2
    exit 1
fi
echo "== done"
