"""Python broker fixture for the Java client's interop tests (InteropTest.java).

    .venv/bin/python clients/java/src/test/resources/fixture_server.py

Listens on 127.0.0.1 on two free ports, a ``Fixture`` root and a login portal (user ``alice``,
password ``s3cret``, anonymous allowed), prints ``READY plain=<n> login=<m>`` on stdout once ready, and
exits when its standard input closes (so a test that dies never leaves it behind).

    fixture_server.py --unix PATH

also serves the ``Fixture`` root on the Unix socket ``PATH`` (the ``unix:`` endpoint of
``net.unix``), before it prints READY (UnixSocketInteropTest.java).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
sys.path.insert(0, ROOT)

import broker  # noqa: E402
from broker.login import Avatar  # noqa: E402
from cred.checkers import AllowAnonymousAccess, InMemoryUsernamePasswordDatabase  # noqa: E402
from cred.portal import Portal, Realm  # noqa: E402
from net.defer import Deferred, Failure, ensure_deferred  # noqa: E402
from net.reactor import make_reactor  # noqa: E402


@broker.copyable("interop.Point")
@dataclass
class Point:
    x: int
    y: float


class Counter(broker.Referenceable):
    """A per-call object handed out by reference."""

    def __init__(self, start: int) -> None:
        self.value = start

    def remote_increment(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def remote_value(self) -> int:
        return self.value


class Scoreboard(broker.Cacheable):
    """A Cacheable (PROTOCOL.md §16) for CacheInteropTest.java: scores pushed to every copy."""

    cache_type = "interop.Scoreboard"

    def __init__(self) -> None:
        self.scores: dict[str, int] = {}
        self.observers: list[broker.CacheObserver] = []
        self.stopped = 0
        self.waiters: list[tuple[int, Deferred[int]]] = []

    def get_state_to_cache_and_observe_for(self, perspective: Any, observer: broker.CacheObserver) -> Any:
        self.observers.append(observer)
        return dict(self.scores)

    def stopped_observing(self, perspective: Any, observer: broker.CacheObserver) -> None:
        self.observers.remove(observer)
        self.stopped += 1
        due = [d for n, d in self.waiters if n <= self.stopped]
        self.waiters = [(n, d) for n, d in self.waiters if n > self.stopped]
        for d in due:
            d.callback(self.stopped)


class Fixture(broker.Root):
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.released: list[str] = []
        self.scoreboards: dict[str, Scoreboard] = {}

    def remote_wait_forever(self, name: str) -> Deferred[None]:
        """Waits on a Deferred nobody fires (CallOptionsInteropTest.java, PROTOCOL.md §18): only
        the call's deadline (or a cancel) ends it; ``was_cancelled(name)`` tells which did."""
        ctx = broker.current_call()
        self.stopped_calls = getattr(self, "stopped_calls", {})

        def cancelled(d: Deferred[None]) -> None:
            self.stopped_calls[name] = "deadline" if ctx is not None and ctx.expired else "cancelled"

        return Deferred(cancelled)

    def remote_was_cancelled(self, name: str) -> str | None:
        """How call ``name`` of wait_forever ended ("deadline", "cancelled"), None if it has not."""
        return getattr(self, "stopped_calls", {}).get(name)

    def remote_call_options(self) -> dict[str, Any]:
        """What this call carried (§18): its budget left and its metadata."""
        ctx = broker.current_call()
        assert ctx is not None
        return {"remaining": ctx.remaining(), "metadata": dict(ctx.metadata), "call_id": ctx.call_id}

    def remote_add(self, a: Any, b: Any) -> Any:
        return a + b

    def remote_echo(self, value: Any) -> Any:
        return value

    def remote_counter_later(self, name: str, start: int) -> Deferred[Counter]:
        """A Counter answered only once ``release_counter(name)`` is called (PipeliningInteropTest,
        PROTOCOL.md §15): calls pipelined on it wait for it meanwhile, in order."""
        d: Deferred[Counter] = Deferred()
        self.later = getattr(self, "later", {})
        self.later[name] = (d, start)
        return d

    def remote_release_counter(self, name: str) -> None:
        d, start = self.later.pop(name)
        d.callback(Counter(start))

    def remote_pipeline_on(self, listener: broker.RemoteReference, method: str) -> Deferred[Any]:
        """Call ``method`` on the Java object, then ``shout("piped")`` on its answer without waiting
        for it (PROTOCOL.md §15): the Java client as the callee of a pipelined call."""
        return listener.call_remote(method).call_remote("shout", "piped")

    def remote_greet(self, name: str, greeting: str = "hello", times: int = 1) -> str:
        return " ".join([f"{greeting} {name}"] * times)

    def remote_fail(self, message: str) -> None:
        raise ValueError(message)

    def remote_counter(self, start: int) -> Counter:
        return Counter(start)

    def remote_same_counter_twice(self, start: int) -> list[Counter]:
        c = Counter(start)
        return [c, c]

    def remote_call_back(self, listener: broker.RemoteReference, method: str, *args: Any) -> Deferred[Any]:
        """Call ``method`` on the Java object and return its answer."""
        return listener.call_remote(method, *args)

    def remote_is_same(self, a: Any, b: Any) -> bool:
        return a is b

    def remote_point(self, x: int, y: float) -> Point:
        return Point(x, y)

    def remote_norm2(self, p: Point) -> float:
        return p.x * p.x + p.y * p.y

    def remote_slow(self, seconds: float) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.reactor.call_later(seconds, d.callback, "done")
        return d

    def remote_scoreboard(self, name: str) -> Scoreboard:
        return self.scoreboards.setdefault(name, Scoreboard())

    def remote_set_score(self, name: str, player: str, score: int) -> None:
        board = self.scoreboards[name]
        board.scores[player] = score
        for observer in board.observers:
            observer.call_remote("set_score", player, score)

    def remote_wait_stopped(self, name: str, count: int) -> Any:
        """Answers (the number stopped) once ``count`` observers have stopped in all."""
        board = self.scoreboards[name]
        if board.stopped >= count:
            return board.stopped
        d: Deferred[int] = Deferred()
        board.waiters.append((count, d))
        return d

    def remote_scoreboard_stats(self, name: str) -> dict[str, int]:
        board = self.scoreboards[name]
        return {"watching": len(board.observers), "stopped": board.stopped}

    # -- streams (StreamsInteropTest.java, PROTOCOL.md §17) --

    def remote_numbers(self, n: int) -> Iterator[int]:
        """A stream of 0 … n−1."""
        return iter(range(n))

    def remote_counted(self, name: str, n: int | None) -> Iterator[int]:
        """A stream of 0 … n−1 (endless for None) that counts what the broker pulled from it
        (``stream_stats(name)``), and notes when it is closed (the consumer cancelled)."""
        self.streams = getattr(self, "streams", {})
        stats = self.streams[name] = {"pulled": 0, "closed": False, "waiters": []}

        def items() -> Iterator[int]:
            i = 0
            try:
                while n is None or i < n:
                    stats["pulled"] += 1
                    yield i
                    i += 1
            finally:
                stats["closed"] = True
                for d in stats.pop("waiters"):
                    d.callback(stats["pulled"])
        return items()

    def remote_stream_stats(self, name: str) -> dict[str, Any]:
        """How many items stream ``name``'s source has given so far, and whether it is closed."""
        stats = self.streams[name]
        return {"pulled": stats["pulled"], "closed": stats["closed"]}

    def remote_wait_closed(self, name: str) -> Any:
        """Answers (the items pulled) once stream ``name``'s source is closed."""
        stats = self.streams[name]
        if stats["closed"]:
            return stats["pulled"]
        d: Deferred[int] = Deferred()
        stats["waiters"].append(d)
        return d

    def remote_failing(self, n: int) -> Iterator[int]:
        """n items, then a failure (ValueError "ran dry after n")."""
        yield from range(n)
        raise ValueError(f"ran dry after {n}")

    def remote_slow_numbers(self, n: int, seconds: float) -> Any:
        """An async stream: 0 … n−1, each after ``seconds`` (reactor timers, not sleeps)."""
        reactor = self.reactor

        async def items() -> Any:
            for i in range(n):
                d: Deferred[None] = Deferred()
                reactor.call_later(seconds, d.callback, None)
                await d
                yield i
        return items()

    def remote_send_stream(self, listener: broker.RemoteReference, method: str, n: int) -> Deferred[Any]:
        """Call ``method`` on the Java object with a stream of 0 … n−1 as its argument."""
        return listener.call_remote(method, iter(range(n)))

    def remote_consume(self, stream: broker.RemoteStream) -> Deferred[list[Any]]:
        """Read a stream the Java caller passed (Java as the producer) and answer its items."""
        async def read() -> list[Any]:
            return [item async for item in stream]
        return ensure_deferred(read())

    def remote_take(self, listener: broker.RemoteReference, method: str, k: int) -> Deferred[list[Any]]:
        """Call ``method`` on the Java object, whose answer is a stream; take ``k`` items and cancel."""
        async def take() -> list[Any]:
            stream = await listener.call_remote(method)
            items = []
            async for item in stream:
                items.append(item)
                if len(items) == k:
                    stream.cancel()
                    break
            return items
        return ensure_deferred(take())

    # -- deadlines served by Java (CallOptionsInteropTest.java, PROTOCOL.md §18.2) --

    def remote_call_with_deadline(self, listener: broker.RemoteReference, method: str, timeout: float,
                                  *args: Any) -> Deferred[dict[str, Any]]:
        """Call ``method`` on the Java object with a budget; answer how it ended."""
        d = listener.options(timeout=timeout).call_remote(method, *args)

        def outcome(result: Any) -> dict[str, Any]:
            if isinstance(result, Failure):
                return {"error": type(result.value).__qualname__,
                        "kind": getattr(result.value, "kind", None)}
            return {"value": result}
        d.add_both(outcome)
        return d


class User(Avatar):
    """The avatar of the login server: says who logged in, and can call the mind back."""

    def __init__(self, avatar_id: Any, mind: Any) -> None:
        self.name = avatar_id if isinstance(avatar_id, str) else "anonymous"
        self.mind = mind

    def perspective_whoami(self) -> str:
        return self.name

    def perspective_ask_mind(self, method: str, *args: Any) -> Deferred[Any]:
        answer: Deferred[Any] = self.mind.call_remote(method, *args)
        return answer


def login_portal() -> Portal:
    users = InMemoryUsernamePasswordDatabase(iterations=4096)
    users.add_user("alice", "s3cret")
    return Portal(Realm(User), [users, AllowAnonymousAccess()])


def endpoint_value(text: str) -> str:
    """``text`` escaped for an endpoint string (a colon, backslash, '=' or bracket in a path)."""
    return "".join("\\" + c if c in "\\:=[]" else c for c in text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unix", metavar="PATH", help="also serve the Fixture root on this Unix socket")
    options = parser.parse_args()
    reactor = make_reactor()
    fixture = Fixture(reactor)
    d = broker.serve(reactor, "tcp:0:interface=127.0.0.1", fixture)

    def listening(port: Any) -> Deferred[Any]:
        login = broker.serve(reactor, "tcp:0:interface=127.0.0.1", login_portal())
        ready = f"READY plain={port.get_host().port}"

        def login_listening(lport: Any) -> Any:
            line = f"{ready} login={lport.get_host().port}"
            if options.unix is None:
                print(line, flush=True)
                return None
            unix = broker.serve(reactor, "unix:" + endpoint_value(options.unix), fixture)

            def unix_listening(uport: Any) -> None:
                # stopping the reactor does not stop its ports: remove the socket file first
                reactor.add_system_event_trigger("before", "shutdown", uport.stop_listening)
                print(line, flush=True)

            unix.add_callback(unix_listening)
            return unix

        login.add_callback(login_listening)
        return login

    def failed(f: Any) -> None:
        print(f"cannot listen: {f.value}", file=sys.stderr, flush=True)
        reactor.stop()

    d.add_callback(listening)
    d.add_errback(failed)

    def watch_stdin() -> None:
        sys.stdin.read()
        reactor.call_from_thread(reactor.stop)

    threading.Thread(target=watch_stdin, daemon=True).start()
    reactor.run()


if __name__ == "__main__":
    main()
