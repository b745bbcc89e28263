package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.pbroker.wire.Answer;
import org.pbroker.wire.Call;
import org.pbroker.wire.ErrorMessage;
import org.pbroker.wire.Hello;
import org.pbroker.wire.Message;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireDecoder;
import org.pbroker.wire.WireEncoder;

/**
 * The Java callee's deadline timers (docs/PROTOCOL.md section 18.2), on a socket-free session
 * whose dispatcher has a hand-driven clock: a call with a "timeout" starts a timer; if it fires
 * first the method's future is cancelled and the answer is an error of kind "deadline" (nothing
 * for a one-way call), and a late result is dropped; a method that finishes first stops it. The
 * method sees its budget in {@link CallContext}.
 */
class CalleeDeadlineTest {
    /** A timer the test fires by hand. */
    private static final class Timer {
        final Duration delay;
        final Runnable task;
        boolean cancelled;

        Timer(Duration delay, Runnable task) {
            this.delay = delay;
            this.task = task;
        }
    }

    private final List<Timer> timers = new ArrayList<>();
    /** Calls dispatched but not run yet, while {@link #holdCalls}: a busy executor. */
    private final List<Session.IncomingCall> held = new ArrayList<>();
    private boolean holdCalls;
    private int methodRuns;
    private final Map<String, CompletableFuture<Object>> running = new LinkedHashMap<>();
    private Duration seenBudget;
    private Session session;
    private WireDecoder out;

    @BeforeEach
    void open() throws Exception {
        Session.Dispatcher clock = new Session.Dispatcher() {
            @Override
            public void dispatch(Session.IncomingCall call) {
                if (holdCalls) {
                    held.add(call);
                } else {
                    call.run();
                }
            }

            @Override
            public void deliver(Runnable completion) {
                completion.run();
            }

            @Override
            public void reenter(Runnable task) {
                task.run();
            }

            @Override
            public Runnable schedule(Duration delay, Runnable task) {
                Timer t = new Timer(delay, task);
                timers.add(t);
                return () -> t.cancelled = true;
            }
        };
        Referenceable root = new Referenceable() {
            @Override
            public Object remoteMessageReceived(String method, List<Object> args,
                    Map<String, Object> kwargs) {
                methodRuns++;
                seenBudget = CallContext.current().flatMap(CallContext::remaining).orElse(null);
                if (method.equals("sync")) {
                    return "done";
                }
                CompletableFuture<Object> f = new CompletableFuture<>();
                running.put((String) args.get(0), f);
                return f;
            }
        };
        session = Session.withFeatures(Session.Role.SERVER, Session.Limits.defaults(), root, clock,
                List.of(Wire.FEATURE_CALL_OPTIONS));
        out = new WireDecoder(Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH,
                Wire.DEFAULT_MAX_CONTAINER_LENGTH, WireDecoder.FrameLimits.defaults(),
                List.of(Wire.FEATURE_CALL_OPTIONS), true, null);
        session.receiveData(new WireEncoder().encodeFrame(new Hello(1, Wire.DEFAULT_MAX_FRAME_SIZE,
                Wire.DEFAULT_MAX_DEPTH, Wire.DEFAULT_MAX_CONTAINER_LENGTH,
                List.of(Wire.FEATURE_CALL_OPTIONS))));
        assertInstanceOf(Hello.class, sent().get(0));
    }

    private void call(long id, String method, String name, Map<String, Object> options, long flags)
            throws Exception {
        session.receiveData(new WireEncoder().encodeFrame(new Call(id, 0, method,
                List.of(name), Map.of(), flags, options)));
    }

    private List<Message> sent() throws Exception {
        List<Message> messages = new ArrayList<>();
        for (byte[] body : session.drainOutbox()) {
            messages.add(out.decodeBody(body));
        }
        return messages;
    }

    @Test
    void theDeadlineCancelsTheMethodAndAnswersDeadline() throws Exception {
        call(1, "hang", "a", Map.of("timeout", 0.5), 0);
        assertEquals(1, timers.size());
        assertEquals(Duration.ofMillis(500), timers.get(0).delay);
        assertTrue(seenBudget != null && seenBudget.compareTo(Duration.ofMillis(500)) <= 0,
                "the method's budget: " + seenBudget);
        assertEquals(List.of(), sent(), "nothing until the budget passes");
        timers.get(0).task.run();
        List<Message> messages = sent();
        assertEquals(1, messages.size());
        ErrorMessage e = assertInstanceOf(ErrorMessage.class, messages.get(0));
        assertEquals(1, e.requestId());
        assertEquals(Wire.DEADLINE, e.failure().kind());
        assertEquals("broker.DeadlineExceeded", e.failure().typeName());
        assertTrue(running.get("a").isCancelled(), "the method was cancelled");
        assertEquals(0, session.runningCalls());
        timers.get(0).task.run(); // a timer that runs twice changes nothing
        assertEquals(List.of(), sent());
    }

    @Test
    void aMethodThatFinishesFirstStopsTheTimer() throws Exception {
        call(1, "hang", "b", Map.of("timeout", 5L), 0);
        running.get("b").complete("answer");
        List<Message> messages = sent();
        assertEquals("answer", assertInstanceOf(Answer.class, messages.get(0)).value());
        assertTrue(timers.get(0).cancelled, "the timer was stopped");
        timers.get(0).task.run(); // had it raced: it finds nothing to do
        assertEquals(List.of(), sent(), "exactly one answer");
    }

    @Test
    void aSynchronousResultBeatsItsTimer() throws Exception {
        call(1, "sync", "c", Map.of("timeout", 1.0), 0);
        assertEquals("done", assertInstanceOf(Answer.class, sent().get(0)).value());
        assertTrue(timers.get(0).cancelled);
    }

    @Test
    void aOneWayCallIsCancelledAndNothingIsSent() throws Exception {
        call(0, "hang", "d", Map.of("timeout", 0.1), Wire.CALL_NO_ANSWER);
        timers.get(0).task.run();
        assertTrue(running.get("d").isCancelled());
        assertEquals(List.of(), sent());
        assertEquals(0, session.runningCalls());
    }

    @Test
    void aLateResultIsDropped() throws Exception {
        call(1, "hang", "e", Map.of("timeout", 0.1), 0);
        timers.get(0).task.run();
        assertEquals(1, sent().size());
        assertFalse(running.get("e").complete("late"), "cancelled: the late result goes nowhere");
        assertEquals(List.of(), sent());
    }

    @Test
    void aCallWhoseBudgetPassedBeforeItRanIsNotRun() throws Exception {
        holdCalls = true;
        call(1, "sync", "h", Map.of("timeout", 0.1), 0);
        timers.get(0).task.run(); // the executor was busy all along
        ErrorMessage e = assertInstanceOf(ErrorMessage.class, sent().get(0));
        assertEquals(Wire.DEADLINE, e.failure().kind());
        held.get(0).run();
        assertEquals(0, methodRuns, "nobody waits for it: the method does not run");
        assertEquals(List.of(), sent(), "exactly one answer");
    }

    @Test
    void callsWithoutATimeoutHaveNoTimer() throws Exception {
        call(1, "hang", "f", null, 0);
        call(2, "hang", "g", Map.of("metadata", Map.of("k", "v")), 0);
        assertEquals(List.of(), timers, "nothing per call without a budget");
        assertEquals(null, seenBudget);
    }
}
