"""Per-round-trip cost of one `add(1, 2)`: syscalls on each side (strace -c -f) and Python
function calls on the client (cProfile), for the Deferred and the blocking client styles
against the epoll server.

    python -m bench.profile_rt [--calls 2000]

Syscalls are counted by the difference method: each side is traced twice, once for a client
making `base` calls and once for `base + calls`, and the difference is divided by `calls`, so
interpreter start-up, imports, connecting and the handshake cancel out. cProfile is enabled in
the client only around the measured calls. Both run with CPU pinning off (strace adds its own
scheduling); the counts, not the times, are the point. Not part of `python -m bench`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _client_calls(style: str, port: int, n: int, profile: str | None) -> None:
    """Connect, make `n` sequential add(1, 2) calls (profiled if asked), disconnect."""
    endpoint = f"tcp:127.0.0.1:{port}"
    prof = cProfile.Profile() if profile else None
    if style == "blocking":
        import broker.blocking

        conn = broker.blocking.connect(endpoint)
        call = conn.root.call_remote
        if prof:
            prof.enable()
        for _ in range(n):
            call("add", 1, 2)
        if prof:
            prof.disable()
        conn.close()
    else:
        import broker
        from net.reactor import make_reactor

        reactor = make_reactor()
        left = [n]

        def step(_r: Any, root: Any) -> None:
            if left[0] == 0:
                if prof:
                    prof.disable()
                reactor.stop()
                return
            left[0] -= 1
            root.call_remote("add", 1, 2).add_callback(step, root)

        def go(root: Any) -> None:
            if prof:
                prof.enable()
            step(None, root)

        broker.connect(reactor, endpoint).add_callback(go).add_errback(lambda f: (print(f), reactor.stop()))
        reactor.run()
    if prof and profile:
        prof.dump_stats(profile)


def _strace_total(path: str) -> tuple[int, dict[str, int]]:
    """Total syscalls and per-syscall counts from an `strace -c` summary file."""
    per: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
            try:
                per[parts[-1]] = int(parts[3])
            except ValueError:
                pass
        elif parts and parts[-1] == "total" and len(parts) >= 4:
            total = int(parts[2]) if not parts[2].replace(".", "").isdigit() or "." not in parts[2] else int(parts[3])
    return sum(per.values()) or total, per


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PBROKER_REACTOR="epoll", BENCH_PIN="0", PYTHONUNBUFFERED="1")
    return env


def _measure(style: str, n: int, tmp: str, tag: str) -> tuple[dict[str, int], dict[str, int]]:
    """Trace a fresh server and a client making `n` calls; per-syscall counts for each side."""
    srv_out, cli_out = f"{tmp}/{tag}-server", f"{tmp}/{tag}-client"
    server = subprocess.Popen(["strace", "-c", "-f", "-o", srv_out, sys.executable, "-m", "bench.worker",
                               "pbroker-epoll", "serve"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        while not line.strip().isdigit():
            line = server.stdout.readline()
        port = int(line)
        subprocess.run(["strace", "-c", "-f", "-o", cli_out, sys.executable, "-m", "bench.profile_rt", "--client",
                        style, str(port), str(n)], cwd=ROOT, env=_env(), check=True, timeout=300)
        time.sleep(0.3)
    finally:
        _stop_traced(server)
    return _strace_total(srv_out)[1], _strace_total(cli_out)[1]


def _stop_traced(strace: subprocess.Popen[str]) -> None:
    """End the traced server (strace's child, by its pid), so that strace writes its summary and exits.

    Signalling strace itself would only detach it and leave the server running."""
    import psutil

    try:
        kids = psutil.Process(strace.pid).children()
    except psutil.Error:
        kids = []
    for k in kids:
        try:
            k.terminate()
        except psutil.Error:
            pass
    try:
        strace.wait(15)
    except subprocess.TimeoutExpired:
        for k in kids:
            try:
                k.kill()
            except psutil.Error:
                pass
        strace.kill()
        strace.wait(5)


def _diff(a: dict[str, int], b: dict[str, int], n: int) -> dict[str, float]:
    keys = set(a) | set(b)
    d = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in keys}
    return {k: v for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v >= 0.05}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_rt")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--base", type=int, default=200)
    p.add_argument("--client", nargs=3, metavar=("STYLE", "PORT", "N"), help=argparse.SUPPRESS)
    p.add_argument("--profile", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.client:
        _client_calls(a.client[0], int(a.client[1]), int(a.client[2]), a.profile)
        return 0
    have_strace = shutil.which("strace") is not None
    with tempfile.TemporaryDirectory() as tmp:
        for style in ("deferred", "blocking"):
            print(f"== {style} client -> epoll server, per add(1, 2) round trip")
            if have_strace:
                s1, c1 = _measure(style, a.base, tmp, f"{style}-1")
                s2, c2 = _measure(style, a.base + a.calls, tmp, f"{style}-2")
                for side, x, y in (("server", s1, s2), ("client", c1, c2)):
                    d = _diff(x, y, a.calls)
                    print(f"  syscalls, {side}: {sum(d.values()):.1f}  (" +
                          ", ".join(f"{k} {v:.2f}" for k, v in d.items()) + ")")
            else:
                print("  strace not found: syscalls not counted")
            # cProfile on the client, in a subprocess against an untraced server
            prof = f"{tmp}/{style}.prof"
            server = subprocess.Popen([sys.executable, "-m", "bench.worker", "pbroker-epoll", "serve"], cwd=ROOT,
                                      env=_env(), stdout=subprocess.PIPE, text=True)
            try:
                assert server.stdout is not None
                line = server.stdout.readline()
                while not line.strip().isdigit():
                    line = server.stdout.readline()
                subprocess.run([sys.executable, "-m", "bench.profile_rt", "--profile", prof, "--client", style,
                                line.strip(), str(a.calls)], cwd=ROOT, env=_env(), check=True, timeout=300)
            finally:
                server.terminate()
                server.wait(10)
            st = pstats.Stats(prof)
            print(f"  Python function calls, client (cProfile): {st.total_calls / a.calls:.1f} "
                  f"({st.prim_calls / a.calls:.1f} primitive)")
            top = sorted(st.stats.items(), key=lambda kv: -kv[1][1])[:12]  # type: ignore[attr-defined]
            print("  most called per round trip: " + ", ".join(
                f"{Path(f).name}:{fn} {v[1] / a.calls:.1f}" for (f, _l, fn), v in top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
