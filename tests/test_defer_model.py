"""Property test: random sequences of add_callback/add_errback/add_both/fire/pause/unpause and
inner Deferreds give the same callback inputs and final result as a simple reference model."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from net.defer import Deferred, Failure, fail, succeed

CB_KINDS = ["inc", "raise", "fired_ok", "fired_fail", "pending"]
EB_KINDS = ["recover", "reraise", "pass_failure", "pending"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("cb"), st.sampled_from(CB_KINDS)),
        st.tuples(st.just("eb"), st.sampled_from(EB_KINDS)),
        st.tuples(st.just("both"), st.just("")),
        st.tuples(st.sampled_from(["fire_ok", "fire_fail", "pause", "unpause", "fire_inner",
                                   "fail_inner"]), st.just("")),
    ),
    max_size=40,
)

Result = tuple[str, Any]  # ("ok", int) or ("fail", tag)


class Model:
    """The obvious sequential semantics, with no Deferred machinery."""

    def __init__(self) -> None:
        self.fired = False
        self.result: Result = ("ok", None)
        self.queue: list[tuple[int, str | None, str | None]] = []
        self.paused = 0
        self.waiting: int | None = None  # id of the inner Deferred we wait on
        self.inners: list[int] = []  # unfired inner ids, oldest first
        self.log: list[tuple[int, Result]] = []

    def run(self) -> None:
        while self.fired and not self.paused and self.waiting is None and self.queue:
            cid, on_ok, on_fail = self.queue.pop(0)
            kind = on_ok if self.result[0] == "ok" else on_fail
            if kind is None:
                continue
            self.log.append((cid, self.result))
            ok, value = self.result
            if kind == "inc":
                self.result = ("ok", value + 1)
            elif kind == "raise":
                self.result = ("fail", f"raised{cid}")
            elif kind == "fired_ok":
                self.result = ("ok", cid * 1000)
            elif kind == "fired_fail":
                self.result = ("fail", f"inner{cid}")
            elif kind == "pending":
                self.waiting = cid
                self.inners.append(cid)
            elif kind == "recover":
                self.result = ("ok", -cid)
            elif kind in ("reraise", "pass_failure"):
                pass
            elif kind == "both":
                self.result = ("ok", value + 1) if ok == "ok" else ("ok", -cid)

    def fire_inner(self, ok: bool) -> None:
        cid = self.inners.pop(0)
        if self.waiting == cid:
            self.waiting = None
            self.result = ("ok", cid * 7) if ok else ("fail", f"late{cid}")


class Real:
    def __init__(self) -> None:
        self.d: Deferred[Any] = Deferred()
        self.inners: list[tuple[int, Deferred[Any]]] = []
        self.log: list[tuple[int, Result]] = []

    @staticmethod
    def as_result(r: Any) -> Result:
        if isinstance(r, Failure):
            return ("fail", str(r.value))
        return ("ok", r)

    def callback_for(self, cid: int, kind: str) -> Any:
        def cb(r: Any) -> Any:
            self.log.append((cid, self.as_result(r)))
            if kind == "inc":
                return r + 1
            if kind == "raise":
                raise ValueError(f"raised{cid}")
            if kind == "fired_ok":
                return succeed(cid * 1000)
            if kind == "fired_fail":
                return fail(ValueError(f"inner{cid}"))
            if kind == "pending":
                inner: Deferred[Any] = Deferred()
                self.inners.append((cid, inner))
                return inner
            if kind == "recover":
                return -cid
            if kind == "reraise":
                r.raise_exception()
            if kind == "pass_failure":
                return r
            if kind == "both":
                return r + 1 if not isinstance(r, Failure) else -cid
            raise AssertionError(kind)

        return cb


def drain(model: Model, real: Real) -> None:
    while model.paused:
        model.paused -= 1
        model.run()
        real.d.unpause()
    if not model.fired:
        model.fired = True
        model.result = ("ok", 0)
        model.run()
        real.d.callback(0)
    while model.inners:
        model.fire_inner(True)
        model.run()
        cid, inner = real.inners.pop(0)
        inner.callback(cid * 7)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_deferred_matches_reference_model(sequence: list[tuple[str, str]]) -> None:
    model, real = Model(), Real()
    for cid, (op, kind) in enumerate(sequence):
        if op == "cb":
            model.queue.append((cid, kind, None))
            model.run()
            real.d.add_callback(real.callback_for(cid, kind))
        elif op == "eb":
            model.queue.append((cid, None, kind))
            model.run()
            real.d.add_errback(real.callback_for(cid, kind))
        elif op == "both":
            model.queue.append((cid, "both", "both"))
            model.run()
            real.d.add_both(real.callback_for(cid, "both"))
        elif op in ("fire_ok", "fire_fail"):
            if model.fired:
                continue
            model.fired = True
            model.result = ("ok", 1) if op == "fire_ok" else ("fail", "fired")
            model.run()
            if op == "fire_ok":
                real.d.callback(1)
            else:
                real.d.errback(ValueError("fired"))
        elif op == "pause":
            model.paused += 1
            real.d.pause()
        elif op == "unpause":
            if not model.paused:
                continue
            model.paused -= 1
            model.run()
            real.d.unpause()
        elif op in ("fire_inner", "fail_inner"):
            if not model.inners:
                continue
            ok = op == "fire_inner"
            model.fire_inner(ok)
            model.run()
            cid_, inner = real.inners.pop(0)
            if ok:
                inner.callback(cid_ * 7)
            else:
                inner.errback(ValueError(f"late{cid_}"))
        assert real.log == model.log
    drain(model, real)
    assert real.log == model.log
    final: list[Result] = []

    def probe(r: Any) -> None:
        final.append(Real.as_result(r))

    real.d.add_both(probe)
    assert final == [model.result]
