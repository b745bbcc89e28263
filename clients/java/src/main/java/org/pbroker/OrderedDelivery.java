package org.pbroker;

import java.util.ArrayDeque;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One connection's RemoteCache updates and the rest of its user work (incoming calls, answers),
 * delivered to the callback executor in wire order (docs/PROTOCOL.md section 16.2).
 *
 * <p>Why: a server that updates a cache and then calls the client (or answers it) expects the
 * client to see the update first. Updates must also run one at a time, in order, whatever the
 * executor is. So updates go through a serial lane on the callback executor; other work that
 * arrives while updates wait or run joins the lane behind them and is handed to the executor
 * only when they are done (the lane then yields, so on a one-thread executor, the default,
 * everything runs exactly in wire order). Work with no update waiting goes straight to the
 * executor. With an executor of several threads, calls still run concurrently (the user's
 * choice); an update sent before a call has run when the call starts. Thread-safe.
 */
final class OrderedDelivery {
    private static final Logger LOG = Logger.getLogger(OrderedDelivery.class.getName());

    private record Task(Runnable work, boolean update) {}

    private final Executor executor;
    private final ArrayDeque<Task> lane = new ArrayDeque<>(); // guarded by this
    private boolean draining; // guarded by this: a drain is submitted or running

    /** @param executor the callback executor (runs work inline once it refuses it: closed) */
    OrderedDelivery(Executor executor) {
        this.executor = executor;
    }

    /** A RemoteCache update: runs after everything delivered before it, one at a time. */
    void update(Runnable update) {
        enqueue(new Task(update, true));
    }

    /** An incoming call, an answer's completion: starts after the updates delivered before it. */
    void deliver(Runnable work) {
        synchronized (this) {
            if (draining || !lane.isEmpty()) {
                lane.add(new Task(work, false));
                return;
            }
        }
        submit(work);
    }

    private void enqueue(Task task) {
        synchronized (this) {
            lane.add(task);
            if (draining) {
                return;
            }
            draining = true;
        }
        submit(this::drain);
    }

    /** Run updates inline until the lane is empty or holds other work, which is handed on. */
    private void drain() {
        while (true) {
            Task task;
            synchronized (this) {
                task = lane.poll();
                if (task == null) {
                    draining = false;
                    return;
                }
            }
            if (task.update()) {
                runSafely(task.work());
                continue;
            }
            // Hand it to the executor, then yield behind it: the next update waits its turn.
            try {
                executor.execute(task.work());
            } catch (RejectedExecutionException closed) {
                runSafely(task.work()); // the client is closing: run it here, in order
                continue;
            }
            try {
                executor.execute(this::drain);
                return;
            } catch (RejectedExecutionException closed) {
                // closing: go on here
            }
        }
    }

    private void submit(Runnable r) {
        try {
            executor.execute(r);
        } catch (RejectedExecutionException closed) {
            r.run();
        }
    }

    private static void runSafely(Runnable r) {
        try {
            r.run();
        } catch (RuntimeException | Error e) {
            LOG.log(Level.WARNING, "work delivered in order failed: " + e, e);
        }
    }
}
