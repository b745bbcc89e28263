package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import org.junit.jupiter.api.Test;

/**
 * Cache updates and the other user work of a connection reach the callback executor in wire
 * order (docs/PROTOCOL.md section 16.2): run by hand on an executor the test drives, FIFO (the
 * default one-thread executor) and LIFO (the worst a pool may do).
 */
class OrderedDeliveryTest {
    /** An executor whose tasks the test runs. */
    private static final class Manual implements Executor {
        final ArrayDeque<Runnable> tasks = new ArrayDeque<>();
        boolean closed;

        @Override
        public void execute(Runnable r) {
            if (closed) {
                throw new RejectedExecutionException("closed");
            }
            tasks.add(r);
        }

        void runFifo() {
            for (Runnable r; (r = tasks.pollFirst()) != null; ) {
                r.run();
            }
        }

        void runLifo() {
            for (Runnable r; (r = tasks.pollLast()) != null; ) {
                r.run();
            }
        }
    }

    private final Manual executor = new Manual();
    private final OrderedDelivery delivery = new OrderedDelivery(executor);
    private final List<String> ran = new ArrayList<>();

    private void wire(String... events) {
        for (String e : events) {
            if (e.startsWith("u")) {
                delivery.update(() -> ran.add(e));
            } else {
                delivery.deliver(() -> ran.add(e));
            }
        }
    }

    @Test
    void onAOneThreadExecutorEverythingRunsInWireOrder() {
        wire("c0", "u1", "c1", "u2", "u3", "c2", "c3", "u4");
        executor.runFifo();
        assertEquals(List.of("c0", "u1", "c1", "u2", "u3", "c2", "c3", "u4"), ran);
        ran.clear();
        wire("u5", "c4"); // and again, once the lane is empty
        executor.runFifo();
        assertEquals(List.of("u5", "c4"), ran);
    }

    @Test
    void onAnyExecutorUpdatesKeepTheirOrderAndRunBeforeTheCallsAfterThem() {
        List<String> order = List.of("c0", "u1", "c1", "u2", "u3", "c2", "c3", "u4", "c4");
        wire(order.toArray(String[]::new));
        executor.runLifo();
        assertEquals(order.size(), ran.size());
        assertEquals(List.of("u1", "u2", "u3", "u4"),
                ran.stream().filter(e -> e.startsWith("u")).toList());
        for (int i = 0; i < order.size(); i++) {
            String call = order.get(i);
            if (!call.startsWith("c")) {
                continue;
            }
            for (String before : order.subList(0, i)) {
                if (before.startsWith("u")) {
                    assertTrue(ran.indexOf(before) < ran.indexOf(call), before + " before " + call
                            + " in " + ran);
                }
            }
        }
    }

    @Test
    void aFailingUpdateDoesNotStopTheLane() {
        delivery.update(() -> {
            throw new IllegalStateException("boom");
        });
        wire("c1", "u2");
        executor.runFifo();
        assertEquals(List.of("c1", "u2"), ran);
    }

    @Test
    void onceTheExecutorIsClosedWorkRunsInlineInOrder() {
        wire("u1", "c1", "u2");
        executor.closed = true;
        executor.runFifo(); // the drain finds the executor closed: the rest runs here
        wire("c2", "u3");
        assertEquals(List.of("u1", "c1", "u2", "c2", "u3"), ran);
    }
}
