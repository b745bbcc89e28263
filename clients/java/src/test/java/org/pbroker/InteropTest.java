package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.pbroker.InteropFixtures.assertConcurrentCallersAllAnswered;
import static org.pbroker.InteropFixtures.get;

import java.math.BigInteger;
import java.time.Duration;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.pbroker.InteropFixtures.Listener;
import org.pbroker.InteropFixtures.Point;

/**
 * The Java client against the real Python broker: src/test/resources/fixture_server.py, started
 * as a subprocess with the project's virtualenv ({@code pbroker.python}, default
 * {@code <root>/.venv/bin/python}). Skipped (not failed) when that Python or the broker package is
 * not there, so the Java build works on its own.
 */
class InteropTest {
    @RegisterExtension
    static final FixtureServer SERVER = new FixtureServer("fixture_server.py");
    private PBClient client;

    @BeforeEach
    void connect() throws Exception {
        client = SERVER.connect();
    }

    @AfterEach
    void close() {
        client.close();
    }

    private RemoteReference root() throws Exception {
        return client.getRootObject().get(10, TimeUnit.SECONDS);
    }

    private static Throwable failure(CompletableFuture<?> f) {
        return assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS)).getCause();
    }

    @Test
    void addAndEchoEveryValueType() throws Exception {
        RemoteReference root = root();
        assertEquals(3, get(root.callRemote(Integer.class, "add", 1, 2)));
        assertEquals("ab", get(root.callRemote("add", "a", "b")));
        Map<Object, Object> map = new LinkedHashMap<>();
        map.put("k", List.of(1L, 2.5, "x"));
        map.put(7L, null);
        List<Object> values = Arrays.asList(null, true, false, 0L, -1L, Long.MAX_VALUE,
                Long.MIN_VALUE, new BigInteger("18446744073709551615"), 1.5, -0.0, "héllo ☃ 😀",
                "", List.of(), map);
        List<?> echoed = (List<?>) get(root.callRemote("echo", values));
        assertEquals(values, echoed);
        assertArrayEquals(new byte[] {0, 1, (byte) 255},
                (byte[]) get(root.callRemote("echo", new byte[] {0, 1, (byte) 255})));
        assertTrue(Double.isNaN((Double) get(root.callRemote("echo", Double.NaN))));
    }

    @Test
    void keywordArguments() throws Exception {
        RemoteReference root = root();
        assertEquals("hi ada hi ada", get(root.callRemoteWithKeywords("greet", List.of("ada"),
                Map.of("greeting", "hi", "times", 2))));
    }

    @Test
    void remoteExceptionsCarryTypeAndKind() throws Exception {
        RemoteReference root = root();
        RemoteException e = assertInstanceOf(RemoteException.class,
                failure(root.callRemote("fail", "bad value")));
        assertEquals("failed", e.kind());
        assertEquals("builtins.ValueError", e.remoteType());
        assertEquals("bad value", e.remoteMessage());
        UnimplementedException u = assertInstanceOf(UnimplementedException.class,
                failure(root.callRemote("no_such_method")));
        assertEquals("unimplemented", u.kind());
        // the connection is still fine
        assertEquals(5L, get(root.callRemote("add", 2, 3)));
    }

    @Test
    void referencesAreCallableReturnedAndReleased() throws Exception {
        RemoteReference root = root();
        RemoteReference counter = get(root.callRemote(RemoteReference.class, "counter", 10));
        assertEquals(11L, get(counter.callRemote("increment")));
        assertEquals(15L, get(counter.callRemoteWithKeywords("increment", List.of(),
                Map.of("by", 4))));
        assertEquals(true, get(root.callRemote("is_same", counter, counter)));
        List<?> twice = (List<?>) get(root.callRemote("same_counter_twice", 1));
        assertSame(twice.get(0), twice.get(1));
        counter.close();
        assertInstanceOf(IllegalStateException.class, failure(counter.callRemote("value")));
        assertEquals(2L, get(((RemoteReference) twice.get(0)).callRemote("increment")));
    }

    @Test
    void theServerCallsJavaObjectsBack() throws Exception {
        RemoteReference root = root();
        Listener listener = new Listener();
        assertEquals("HEY!", get(root.callRemote("call_back", listener, "shout", "hey")));
        assertEquals(6L, get(root.callRemote("call_back", listener, "sum", List.of(1, 2, 3))));
        RemoteException e = assertInstanceOf(RemoteException.class,
                failure(root.callRemote("call_back", listener, "explode")));
        assertTrue(e.remoteMessage().contains("no way"), e.getMessage());
        assertInstanceOf(RemoteException.class,
                failure(root.callRemote("call_back", listener, "missing")));
    }

    @Test
    void oneWayCallsRunWithoutAnAnswer() throws Exception {
        RemoteReference root = root();
        Listener listener = new Listener();
        // nothing comes back for the call itself; its effect is the server calling us
        root.callRemoteNoAnswer("call_back", listener, "record", "fire");
        assertEquals(0, client.pendingCalls());
        assertEquals("fire", listener.recorded.get(10, TimeUnit.SECONDS));
    }

    @Test
    void copyablesBothWays() throws Exception {
        RemoteReference root = root();
        assertInstanceOf(UnregisteredCopyException.class, failure(root.callRemote("point", 1, 2.0)));
        client.registerCopyable("interop.Point", Point.class);
        assertEquals(new Point(3, 4.5), get(root.callRemote(Point.class, "point", 3, 4.5)));
        assertEquals(25.0, get(root.callRemote("norm2", new Point(3, 4.0))));
    }

    @Test
    void timeoutCancelsAndTheConnectionGoesOn() throws Exception {
        RemoteReference root = root();
        assertInstanceOf(TimeoutException.class, failure(
                root.callRemoteWithTimeout(Duration.ofMillis(100), "slow", 5.0)));
        assertEquals("done", get(root.callRemote("slow", 0.01)));
    }

    @Test
    void closingFailsPendingCalls() throws Exception {
        RemoteReference root = root();
        CompletableFuture<Object> pending = root.callRemote("slow", 5.0);
        client.close();
        assertInstanceOf(ConnectionLostException.class, failure(pending));
    }

    static final class Mind implements Referenceable {
        @Remote
        public String hello(String who) {
            return "hello from Java, " + who;
        }
    }

    @Test
    void scramLoginGivesTheAvatar() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", SERVER.port("login"))) {
            RemoteReference avatar = get(c.login("alice", "s3cret", new Mind()));
            assertEquals("alice", get(avatar.callRemote("whoami")));
            assertEquals("hello from Java, py", get(avatar.callRemote("ask_mind", "hello", "py")));
        }
    }

    @Test
    void wrongPasswordIsUnauthorized() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", SERVER.port("login"))) {
            RemoteException e = assertInstanceOf(RemoteException.class,
                    failure(c.login("alice", "wrong")));
            assertEquals("cred.error.UnauthorizedLogin", e.remoteType());
        }
    }

    @Test
    void anonymousLogin() throws Exception {
        try (PBClient c = PBClient.connect("127.0.0.1", SERVER.port("login"))) {
            RemoteReference avatar = get(c.loginAnonymous(null));
            assertEquals("anonymous", get(avatar.callRemote("whoami")));
        }
    }

    @Test
    void manyConcurrentCallers() throws Exception {
        assertConcurrentCallersAllAnswered(root());
    }
}
