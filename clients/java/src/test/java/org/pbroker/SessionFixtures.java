package org.pbroker;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The root objects session vectors name ({@code "root"}), as described by the {@code "fixtures"}
 * member of tests/vectors/session.json (docs/PROTOCOL.md section 13.1).
 */
final class SessionFixtures {
    private SessionFixtures() {}

    /**
     * @param name a fixture name
     * @return its root object, null for "none"
     */
    static Referenceable root(String name) {
        return switch (name) {
            case "none" -> null;
            case "calc" -> new Calc();
            case "numbers" -> new Numbers(); // streams_session.json
            default -> throw new IllegalArgumentException("unknown session fixture '" + name + "'");
        };
    }

    /**
     * Root "calc": {@code add(a, b)} → a + b (positional or keyword), {@code fail()} raises "boom",
     * {@code echo(x)} → x, {@code drop(x)} → nil, {@code child()} → a fresh {@link Child} by
     * reference, {@code slow()} → never completes unless cancelled. Dispatched by hand because
     * the vectors use keyword arguments.
     */
    static final class Calc implements Referenceable {
        @Override
        public Object remoteMessageReceived(String method, List<Object> args,
                Map<String, Object> kwargs) {
            return switch (method) {
                case "add" -> (Long) arg(args, kwargs, 0, "a") + (Long) arg(args, kwargs, 1, "b");
                case "fail" -> throw new RemoteException("failed", "builtins.ValueError", "boom",
                        null);
                case "echo" -> arg(args, kwargs, 0, "x");
                case "drop" -> null;
                case "child" -> new Child();
                case "slow" -> new CompletableFuture<>();
                default -> throw new UnimplementedException("broker.NoSuchMethod",
                        "Calc has no remote method '" + method + "'", null);
            };
        }

        private static Object arg(List<Object> args, Map<String, Object> kwargs, int i,
                String name) {
            if (i < args.size()) {
                return args.get(i);
            }
            if (kwargs.containsKey(name)) {
                return kwargs.get(name);
            }
            throw new IllegalArgumentException("missing argument '" + name + "'");
        }
    }

    /**
     * Root "numbers" (streams_session.json): {@code numbers(n)} streams 0 … n−1, {@code
     * failing(n)} the same, then fails, {@code endless()} 0, 1, 2, … until cancelled.
     */
    static final class Numbers implements Referenceable {
        @Override
        public Object remoteMessageReceived(String method, List<Object> args,
                Map<String, Object> kwargs) {
            return switch (method) {
                case "numbers" -> java.util.stream.LongStream.range(0, (Long) args.get(0))
                        .boxed().iterator();
                case "failing" -> failing((Long) args.get(0));
                case "endless" -> java.util.stream.LongStream.iterate(0, i -> i + 1).boxed()
                        .iterator();
                default -> throw new UnimplementedException("broker.NoSuchMethod",
                        "Numbers has no remote method '" + method + "'", null);
            };
        }

        private static java.util.Iterator<Long> failing(long n) {
            return new java.util.Iterator<>() {
                private long next;

                @Override
                public boolean hasNext() {
                    if (next < n) {
                        return true;
                    }
                    throw new RemoteException("failed", "builtins.ValueError", "ran dry", null);
                }

                @Override
                public Long next() {
                    return next++;
                }
            };
        }
    }

    /** What {@code child()} returns: {@code value()} → 42. */
    /** cache_session.json's "vectors.Board": a RemoteCache keeping its state, and set(key, value). */
    public static final class Board extends RemoteCache {
        Map<Object, Object> state = new java.util.LinkedHashMap<>();

        public Board() {}

        @Override
        protected void setCopyableState(Object state) {
            this.state = new java.util.LinkedHashMap<>((Map<?, ?>) state);
        }

        public void observe_set(String key, Object value) {
            state.put(key, value);
        }
    }

    static final class Child implements Referenceable {
        @Remote
        public long value() {
            return 42;
        }
    }
}
