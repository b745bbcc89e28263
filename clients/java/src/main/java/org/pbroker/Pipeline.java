package org.pbroker;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.pbroker.wire.Call;
import org.pbroker.wire.FailureInfo;
import org.pbroker.wire.Finish;

/**
 * One session's promise-pipelining state (feature "pipelining", docs/PROTOCOL.md section 15),
 * made on first use. As callee: the questions still running, the outcome of each answered
 * question a pipelined call may still name (a reference answer's object, or a failure) until
 * the caller's finish, and the pipelined calls waiting on a running question, in order. As
 * caller: the question ids to finish. Not thread-safe: the session's lock guards it.
 */
final class Pipeline {
    /** What a pipelined call's question is, when the call arrives or its question resolves. */
    sealed interface Target permits OnObject, Refused, Wait {}

    /** Dispatch on this object. */
    record OnObject(Referenceable object) implements Target {}

    /** Fail with this. */
    record Refused(RuntimeException reason) implements Target {}

    /** The question is running: the call was queued on it. */
    record Wait() implements Target {}

    private final Set<Long> running = new HashSet<>();
    private final LinkedHashMap<Long, Object> retained = new LinkedHashMap<>();
    private final Map<Long, List<Call>> waiting = new LinkedHashMap<>();
    private final List<Long> finishing = new ArrayList<>();
    private int waitingCount;

    /** A call that wants an answer arrived: its question is running until it is answered. */
    void started(long requestId) {
        if (requestId != 0) {
            running.add(requestId);
        }
    }

    /** @return pipelined calls waiting on running questions (they count as running calls) */
    int waitingCount() {
        return waitingCount;
    }

    /** @return outcomes kept for pipelined calls, until finished */
    int retainedCount() {
        return retained.size();
    }

    /**
     * Where a pipelined call on {@code questionId} goes (section 15.1); a call on a running
     * question is queued on it here.
     */
    Target lookUp(Call call, long questionId) {
        Object outcome = retained.get(questionId);
        if (outcome != null) {
            return targetFor(questionId, outcome);
        }
        if (questionId != 0 && running.contains(questionId)) {
            waiting.computeIfAbsent(questionId, k -> new ArrayList<>()).add(call);
            waitingCount++;
            return new Wait();
        }
        return new Refused(new InvalidReferenceException("broker.NoSuchQuestion", "question "
                + questionId + " is not running and no reference answer of it is held (unknown,"
                + " finished, or its answer was not a reference)", null));
    }

    /**
     * Question {@code requestId} is answered ({@code outcome}: a Referenceable, a FailureInfo,
     * or anything else for a plain answer): keep what may be named, and hand back the calls
     * that waited on it, in order, each with where it goes.
     */
    List<Map.Entry<Call, Target>> resolved(long requestId, Object outcome, int maxRetained) {
        running.remove(requestId);
        if (outcome instanceof Referenceable || outcome instanceof FailureInfo) {
            if (retained.size() >= maxRetained) { // the peer does not finish: forget the oldest
                Iterator<Long> oldest = retained.keySet().iterator();
                oldest.next();
                oldest.remove();
            }
            retained.put(requestId, outcome);
        }
        List<Call> calls = waiting.remove(requestId);
        if (calls == null) {
            return List.of();
        }
        waitingCount -= calls.size();
        List<Map.Entry<Call, Target>> out = new ArrayList<>(calls.size());
        for (Call c : calls) {
            out.add(Map.entry(c, targetFor(requestId, outcome)));
        }
        return out;
    }

    /** A cancel for {@code requestId}: remove it if it is waiting; true if it was. */
    Call cancelWaiting(long requestId) {
        for (List<Call> calls : waiting.values()) {
            for (Iterator<Call> it = calls.iterator(); it.hasNext(); ) {
                Call c = it.next();
                if (c.requestId() == requestId && c.answerWanted()) {
                    it.remove();
                    waitingCount--;
                    running.remove(requestId);
                    return c;
                }
            }
        }
        return null;
    }

    /** The caller is done with these questions. */
    void finish(Finish finish) {
        for (long id : finish.questionIds()) {
            retained.remove(id);
        }
    }

    /** Caller side: the answer or error of {@code questionId} arrived and the callee keeps it. */
    void toFinish(long questionId) {
        if (questionId != 0 && !finishing.contains(questionId)) {
            finishing.add(questionId);
        }
    }

    /** @return the finishes due, split to fit {@code maxPerFrame} ids each, and forgotten */
    List<Finish> takeFinishes(long maxPerFrame) {
        if (finishing.isEmpty()) {
            return List.of();
        }
        int per = (int) Math.max(1, Math.min(maxPerFrame - 1, 1 << 19));
        List<Finish> out = new ArrayList<>();
        for (int start = 0; start < finishing.size(); start += per) {
            out.add(new Finish(finishing.subList(start, Math.min(finishing.size(), start + per))));
        }
        finishing.clear();
        return out;
    }

    /** The failure of a call pipelined on {@code questionId}, which failed with {@code info}. */
    static RemoteException pipelinedFailure(long questionId, FailureInfo info) {
        return RemoteException.of(new FailureInfo(info.kind(), info.typeName(),
                "pipelined on question " + questionId + ", which failed: " + info.message(),
                null));
    }

    private static Target targetFor(long questionId, Object outcome) {
        if (outcome instanceof Referenceable r) {
            return new OnObject(r);
        }
        if (outcome instanceof FailureInfo info) {
            return new Refused(pipelinedFailure(questionId, info));
        }
        return new Refused(new InvalidReferenceException("broker.NotAReference", "question "
                + questionId + "'s answer is not a reference", null));
    }
}
