package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * What the interop tests (InteropTest, UnixSocketInteropTest, Socks5InteropTest) share against
 * the {@code Fixture} root of src/test/resources/fixture_server.py: the Java objects it copies
 * and calls back, a bounded wait, and the concurrency check every transport must pass.
 */
final class InteropFixtures {
    private InteropFixtures() {}

    /** fixture_server.py's copyable {@code interop.Point}. */
    record Point(long x, double y) {}

    /** A Java object the server calls back through {@code call_back(obj, method, args...)}. */
    static final class Listener implements Referenceable {
        final CompletableFuture<String> recorded = new CompletableFuture<>();

        @Remote
        public String shout(String s) {
            return s.toUpperCase(java.util.Locale.ROOT) + "!";
        }

        @Remote
        public long sum(List<Long> values) {
            return values.stream().mapToLong(Long::longValue).sum();
        }

        @Remote
        public void record(String s) {
            recorded.complete(s);
        }

        @Remote
        public void explode() {
            throw new UnsupportedOperationException("no way");
        }
    }

    /** {@code f}'s result, waiting ten seconds at most. */
    static <T> T get(CompletableFuture<T> f) throws Exception {
        return f.get(10, TimeUnit.SECONDS);
    }

    /**
     * Eight threads call {@code add} 100 times each on {@code root}'s connection at once: every
     * call is answered, and the answers add up.
     */
    static void assertConcurrentCallersAllAnswered(RemoteReference root) throws Exception {
        List<CompletableFuture<Object>> calls = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        long expected = 0;
        for (int t = 0; t < 8; t++) {
            int base = t * 1000;
            for (int i = 0; i < 100; i++) {
                expected += base + i;
            }
            Thread thread = new Thread(() -> {
                for (int i = 0; i < 100; i++) {
                    CompletableFuture<Object> f = root.callRemote("add", base, i);
                    synchronized (calls) {
                        calls.add(f);
                    }
                }
            });
            thread.start();
            threads.add(thread);
        }
        for (Thread t : threads) {
            t.join();
        }
        long total = 0;
        for (CompletableFuture<Object> f : calls) {
            total += (Long) get(f);
        }
        assertEquals(800, calls.size());
        assertEquals(expected, total);
    }
}
