"""Promise pipelining (feature ``"pipelining"``, PROTOCOL.md §15): calls on answers not yet here.

Two halves, both driven by :class:`broker.session.Session` through small hooks:

* **Caller**: :class:`Promise` is the Deferred a call returns. Its ``call_remote`` sends at once,
  addressed to the question (call flag bit 1, ``target`` = the question id), while the answer is
  on its way; once the answer is here it calls the answer's reference directly; with a peer that
  did not negotiate the feature it waits for the answer, then calls (same result, one more round
  trip). Every answer that was a top-level sender ref, and every error, is finished (§15.3):
  :func:`to_finish` collects the ids and :func:`flush_finish` sends them batched.
* **Callee**: :class:`Pipeline` keeps, per connection and only once used, the outcome of each
  answered question that a pipelined call may still name (a reference's object, or the failure),
  until the caller's finish; and the pipelined calls waiting for a question still running, which
  are dispatched in order when it resolves, before its answer is sent (E-order, §15.4).
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from net.defer import CancelledError, Deferred, Failure, fail

from .errors import BrokerError, ConnectionLost, InvalidReferenceError, OverloadedError, RemoteError, UnimplementedError, error_class_for_kind
from .flavors import Referenceable
from .tables import EMPTY_MAP
from .messages import CALL_NO_ANSWER, CALL_TARGET_IS_QUESTION, FEATURE_PIPELINING, Call, FailureInfo, Finish

if TYPE_CHECKING:
    from .session import RemoteReference, Session

__all__ = ["Promise", "Pipeline", "pipelined_failure"]

log = logging.getLogger("broker.session")

#: The flag bits a pipelined call may carry.
_PIPELINED_FLAGS: Final = CALL_NO_ANSWER | CALL_TARGET_IS_QUESTION


class _Pending:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<pending>"


_PENDING: Final = _Pending()


def pipelined_failure(question_id: int, exc: BaseException) -> BaseException:
    """The failure of a call pipelined on question ``question_id``, which failed with ``exc``:
    the same kind, a message naming the cause, ``exc`` as ``__cause__``."""
    said = exc.message if isinstance(exc, RemoteError) else (str(exc) or type(exc).__name__)
    text = f"pipelined on question {question_id}, which failed: {said}"
    made: BaseException
    if isinstance(exc, RemoteError):
        made = error_class_for_kind(exc.kind)(exc.remote_type, text)
    elif isinstance(exc, ConnectionLost):
        made = ConnectionLost(text, exc.cause, exc.goodbye_kind)
    elif isinstance(exc, (CancelledError, TimeoutError)):
        made = type(exc)(text)
    else:
        made = BrokerError(text)
    made.__cause__ = exc
    return made


#: broker.session.RemoteReference, bound by broker.session as it loads (it imports this module,
#: so this one cannot import it; an import inside _arrived cost a relative-name lookup per call).
_remote_reference: type[RemoteReference] = type(None)  # type: ignore[assignment]


class Promise(Deferred[Any]):
    """The Deferred of a call, and a reference to the answer it will be (§15).

    ``call_remote`` on it is a call on the object the answer will be: pipelined (no wait) when
    the feature is negotiated and the answer has not arrived; direct once it has; after the
    answer otherwise. It returns a Promise too, so chains of dependent calls cost one round trip.
    """

    __slots__ = ("_session", "question_id", "_outcome", "_waiters", "_inner")

    def __init__(self, session: Session, question_id: int, canceller: Any = None) -> None:
        Deferred.__init__(self, canceller if canceller is not None else Promise._cancel_waiting)
        self._session = session
        #: The question this promise answers (0: a call made after another's answer, not yet sent).
        self.question_id = question_id
        self._outcome: Any = _PENDING  # the answer or Failure, recorded as it arrives
        self._waiters: list[tuple[Promise | None, str, tuple[Any, ...], dict[str, Any]]] | None = None
        self._inner: Deferred[Any] | None = None  # the call a waiting promise became

    # The outcome is recorded as the promise fires, before its callbacks run (no callback of
    # our own on every call's chain): a callback calling through the promise sees it arrived.
    def callback(self, result: Any) -> None:
        if not self.called:
            if self._waiters is None and type(result) is not Failure:  # most calls: just record it
                self._outcome = weakref.ref(result) if isinstance(result, _remote_reference) else type(result).__name__
            else:
                self._arrived(result)
        Deferred.callback(self, result)

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        if not self.called:
            if type(fail) is not Failure:
                fail = Failure(fail)
            self._arrived(fail)
        Deferred.errback(self, fail)

    def call_remote(self, _name: str, /, *args: Any, **kwargs: Any) -> Promise:
        """Call ``remote_<_name>(*args, **kwargs)`` on the object this call's answer is."""
        outcome = self._outcome
        if outcome is not _PENDING:
            return self._call_on(outcome, _name, args, kwargs)
        session = self._session
        if self.question_id and FEATURE_PIPELINING in session.negotiated and self.question_id in session.questions:
            d = session.call(self.question_id, _name, args, kwargs, CALL_TARGET_IS_QUESTION)
            return d if isinstance(d, Promise) else _as_promise(session, d)
        later = Promise(session, 0)
        self._wait(later, _name, args, kwargs)
        return later

    def call_remote_no_answer(self, _name: str, /, *args: Any, **kwargs: Any) -> None:
        """A one-way call on the object this call's answer is (pipelined if it can be)."""
        outcome = self._outcome
        if outcome is not _PENDING:
            if isinstance(outcome, Failure):
                raise pipelined_failure(self.question_id, outcome.value)
            self._reference(outcome, _name).call_remote_no_answer(_name, *args, **kwargs)
            return
        session = self._session
        if self.question_id and FEATURE_PIPELINING in session.negotiated and self.question_id in session.questions:
            session.call_no_answer(self.question_id, _name, args, kwargs, CALL_TARGET_IS_QUESTION)
            return
        self._wait(None, _name, args, kwargs)

    def _wait(self, later: Promise | None, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._waiters is None:
            self._waiters = []
        self._waiters.append((later, name, args, kwargs))

    def _arrived(self, result: Any) -> Any:
        # Kept small and weak: holding the promise must not keep the answer's proxy alive (its
        # release is due when the application lets go of it) nor a big answer in memory.
        if isinstance(result, _remote_reference):
            self._outcome = weakref.ref(result)
        elif isinstance(result, Failure):
            self._outcome = result
        else:
            self._outcome = type(result).__name__
        waiters, self._waiters = self._waiters, None
        for later, name, args, kwargs in waiters or ():
            if later is None:
                try:
                    self.call_remote_no_answer(name, *args, **kwargs)
                except Exception as exc:
                    log.info("%r: one-way call %r after question %d not sent: %s", self._session, name, self.question_id, exc)
                continue
            if later.called:
                continue  # cancelled while it waited
            inner = later._inner = self._call_on(self._outcome, name, args, kwargs)
            inner.add_callbacks(later.callback, later.errback)
        return result

    def _call_on(self, outcome: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Promise:
        if isinstance(outcome, Failure):
            return _as_promise(self._session, fail(pipelined_failure(self.question_id, outcome.value)))
        try:
            ref = self._reference(outcome, name)
        except Exception as exc:
            return _as_promise(self._session, fail(exc))
        d = ref.call_remote(name, *args, **kwargs)
        return d if isinstance(d, Promise) else _as_promise(self._session, d)

    def _reference(self, outcome: Any, name: str) -> RemoteReference:
        if isinstance(outcome, _remote_reference):
            return outcome
        if isinstance(outcome, weakref.ref):
            ref = outcome()
            if ref is None:
                raise InvalidReferenceError(
                    "broker.ReleasedReference",
                    f"cannot call {name!r} on the answer of question {self.question_id}: the "
                    "reference it was has been released (nothing held it); keep the answer to call it later")
            return ref  # type: ignore[no-any-return]
        raise InvalidReferenceError(
            "broker.NotAReference",
            f"cannot call {name!r} on the answer of question {self.question_id}: it is a "
            f"{outcome}, not a reference")

    @staticmethod
    def _cancel_waiting(d: Deferred[Any]) -> None:
        if isinstance(d, Promise) and d._inner is not None:
            d._inner.cancel()


def _as_promise(session: Session, d: Deferred[Any]) -> Promise:
    """``d`` as a Promise (one with no question: its calls wait for its result)."""
    promise = Promise(session, 0, lambda _p: d.cancel())
    promise._inner = d
    d.add_callbacks(promise.callback, promise.errback)
    return promise


# -- caller: finish ----------------------------------------------------------------------------


def to_finish(session: Session, question_id: int) -> None:
    """The answer or error of ``question_id`` arrived and the callee keeps it: finish it."""
    if question_id:
        pipeline = session._pipeline
        if pipeline is None:
            pipeline = session._pipeline = Pipeline()
        pipeline.finishing.append(question_id)


def flush_finish(session: Session) -> None:
    """Send the finishes collected, in as few frames as the peer's container limit allows."""
    pipeline = session._pipeline
    if pipeline is None or not pipeline.finishing:
        return
    ids = list(dict.fromkeys(pipeline.finishing))
    pipeline.finishing = []
    peer = session.peer_limits
    per_frame = max(1, min(peer.max_container_length if peer else 1, 2**19) - 1)
    for start in range(0, len(ids), per_frame):
        session._queue_message(Finish(ids[start : start + per_frame]))


# -- callee ------------------------------------------------------------------------------------


class Pipeline:
    """Per-connection pipelining state, made on first use (idle connections hold none)."""

    __slots__ = ("retained", "waiting", "finishing", "one_way_waiting", "_resolving")

    def __init__(self) -> None:
        #: question id -> the object its answer referred to, or its failure; until finished.
        self.retained: dict[int, Any] = {}
        #: question id (still running) -> the pipelined calls on it, in arrival order, each with
        #: the placeholder Deferred that stands in ``Session.answers`` for it (None: one-way).
        self.waiting: dict[int, list[tuple[Call, Deferred[Any] | None]]] = {}
        #: caller side: question ids to finish at the end of this round of processing.
        self.finishing: list[int] = []
        self.one_way_waiting = 0
        self._resolving: deque[tuple[int, Any]] | None = None  # outcomes to fan out (no recursion)


def handle_pipelined_call(session: Session, call: Call, refusal: BaseException | None) -> None:
    """A call whose target is one of the peer's question ids (flag bit 1, negotiated)."""
    error: BaseException | None
    if call.flags & ~_PIPELINED_FLAGS:
        error = UnimplementedError("broker.UnsupportedFlags",
                                   f"call flags {call.flags:#x}: only bits 0 and 1 are implemented")
    elif refusal is not None:
        error = refusal
    else:
        question_id = call.target
        pipeline = session._pipeline
        outcome = pipeline.retained.get(question_id, _PENDING) if pipeline is not None else _PENDING
        if outcome is _PENDING:
            if question_id and question_id in session.answers:
                _queue(session, call)
                return
            error = InvalidReferenceError(
                "broker.NoSuchQuestion",
                f"question {question_id} is not running and no reference answer of it is held "
                "(unknown, finished, or its answer was not a reference)")
        else:
            _run(session, call, question_id, outcome)
            return
    _refuse(session, call, error)


def _refuse(session: Session, call: Call, error: BaseException) -> None:
    if call.flags & CALL_NO_ANSWER:
        log.info("%r: refused pipelined one-way call %r: %s", session, call.method, error)
    else:
        session._send_error(call.request_id, error)


def _running(session: Session) -> int:
    pipeline = session._pipeline
    return len(session.answers) + len(session._one_way_running or ()) + (pipeline.one_way_waiting if pipeline else 0)


def _queue(session: Session, call: Call) -> None:
    """Hold ``call`` until its question resolves; it counts as running meanwhile."""
    limit = session.limits.max_running_calls
    running = _running(session)
    if running >= limit:
        _refuse(session, call, OverloadedError("broker.Overloaded", f"{running} calls running; the limit is {limit}"))
        return
    pipeline = session._pipeline
    if pipeline is None:
        pipeline = session._pipeline = Pipeline()
    placeholder: Deferred[Any] | None = None
    if call.flags & CALL_NO_ANSWER:
        pipeline.one_way_waiting += 1
    else:
        request_id = call.request_id
        placeholder = Deferred()  # cancel (the caller's, or a disconnect) fails it "cancelled"
        placeholder.add_callbacks(session._answer_later, session._error_later, (request_id,), None, (request_id, call, None))
        if session.answers is EMPTY_MAP:
            session.answers = {}
        session.answers[request_id] = placeholder
    pipeline.waiting.setdefault(call.target, []).append((call, placeholder))


def _run(session: Session, call: Call, question_id: int, outcome: Any) -> None:
    """Dispatch ``call`` on the outcome of ``question_id``: its object, or its failure."""
    if isinstance(outcome, FailureInfo):
        cause = error_class_for_kind(outcome.kind)(outcome.type_name, outcome.message)
        _refuse(session, call, pipelined_failure(question_id, cause))
        return
    if not isinstance(outcome, Referenceable):
        _refuse(session, call, InvalidReferenceError(
            "broker.NotAReference", f"question {question_id}'s answer is not a reference"))
        return
    session._run_call(call, outcome)


def answered(session: Session, question_id: int, value: Any) -> None:
    """Question ``question_id`` is answered with ``value`` (about to be sent)."""
    if isinstance(value, Referenceable):
        _resolved(session, question_id, value)
    elif session._pipeline is not None and question_id in session._pipeline.waiting:
        _resolved(session, question_id, None)


def failed(session: Session, question_id: int, info: FailureInfo) -> None:
    """Question ``question_id`` failed with ``info`` (about to be sent)."""
    _resolved(session, question_id, info)


def _resolved(session: Session, question_id: int, outcome: Any) -> None:
    """Keep ``outcome`` while pipelined calls may name it; run the calls waiting on it first."""
    if not question_id:
        return
    pipeline = session._pipeline
    if pipeline is None:
        pipeline = session._pipeline = Pipeline()
    if outcome is not None:
        retained = pipeline.retained
        if len(retained) >= session.limits.max_running_calls:  # the peer does not finish
            oldest = next(iter(retained))
            del retained[oldest]
            if session._quiet is None:
                from .session import _QuietLog

                session._quiet = _QuietLog(log, logging.WARNING)
            session._quiet.log("unfinished answers", session, "peer keeps over %d answers unfinished (PROTOCOL.md "
                               "§15.2); forgot question %d's", len(retained), oldest)
        retained[question_id] = outcome
    if question_id not in pipeline.waiting:
        return
    if pipeline._resolving is not None:  # inside a fan-out already: it runs this one next
        pipeline._resolving.append((question_id, outcome))
        return
    todo = pipeline._resolving = deque([(question_id, outcome)])
    try:
        while todo:
            qid, result = todo.popleft()
            for call, placeholder in pipeline.waiting.pop(qid, ()):
                if placeholder is None:
                    pipeline.one_way_waiting -= 1
                elif session.answers.get(call.request_id) is placeholder:
                    del session.answers[call.request_id]
                else:
                    continue  # cancelled while it waited
                _run(session, call, qid, result)
    finally:
        pipeline._resolving = None


def finish(session: Session, message: Finish) -> None:
    """The caller is done with these questions: forget what was kept for them."""
    pipeline = session._pipeline
    if pipeline is not None:
        for question_id in message.question_ids:
            pipeline.retained.pop(question_id, None)


def drop(session: Session) -> None:
    """The connection ended: forget everything (the placeholders are cancelled with the answers)."""
    session._pipeline = None
