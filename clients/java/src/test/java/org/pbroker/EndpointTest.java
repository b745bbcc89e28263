package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.pbroker.wire.WireVectorsTestAccess;

/** Endpoint strings in the grammar of the Python side's net.endpoints. */
class EndpointTest {
    static Stream<Arguments> valid() {
        return Stream.of(
                Arguments.of("tcp:localhost:8800", new Endpoint.Tcp("localhost", 8800, null)),
                Arguments.of("TCP:example.com:1:timeout=2.5",
                        new Endpoint.Tcp("example.com", 1, Duration.ofMillis(2500))),
                Arguments.of("tcp:[::1]:8000", new Endpoint.Tcp("::1", 8000, null)),
                Arguments.of("tcp:\\:\\:1:8000:timeout=none",
                        new Endpoint.Tcp("::1", 8000, Duration.ZERO)),
                Arguments.of("tls:server.example:8443:ca=/etc/pb/ca.pem:hostname=pb.example",
                        new Endpoint.Tls("server.example", 8443, Path.of("/etc/pb/ca.pem"),
                                "pb.example", null)),
                Arguments.of("tls:127.0.0.1:8443", new Endpoint.Tls("127.0.0.1", 8443, null,
                        null, null)),
                Arguments.of("unix:/run/pbroker.sock",
                        new Endpoint.Unix(Path.of("/run/pbroker.sock"), null)),
                Arguments.of("unix:/tmp/a\\:b\\=c.sock:timeout=1",
                        new Endpoint.Unix(Path.of("/tmp/a:b=c.sock"), Duration.ofSeconds(1))),
                Arguments.of("unix:relative.sock", new Endpoint.Unix(Path.of("relative.sock"),
                        null)),
                Arguments.of("socks5:127.0.0.1:1080:tcp:server.example:8800",
                        new Endpoint.Socks5("127.0.0.1", 1080, null,
                                new Endpoint.Tcp("server.example", 8800, null))),
                // the tunnel's options come between the proxy's port and INNER
                Arguments.of("socks5:proxy:1080:timeout=3:tcp:server.example:8800:timeout=9",
                        new Endpoint.Socks5("proxy", 1080, Duration.ofSeconds(3),
                                new Endpoint.Tcp("server.example", 8800, Duration.ofSeconds(9)))),
                Arguments.of("socks5:[::1]:1080:tls:[2001:db8::7]:8443:ca=ca.pem",
                        new Endpoint.Socks5("::1", 1080, null, new Endpoint.Tls("2001:db8::7",
                                8443, Path.of("ca.pem"), null, null))));
    }

    @ParameterizedTest
    @MethodSource("valid")
    void parses(String spec, Endpoint expected) {
        assertEquals(expected, Endpoint.parse(spec));
        assertEquals(expected, Endpoint.parse(expected.toString()), expected.toString());
    }

    static Stream<Arguments> invalid() {
        return Stream.of(
                // spec, something the message must say
                Arguments.of("localhost:8800", "did you mean 'tcp:localhost:8800'?"),
                Arguments.of("8800", "needs a type prefix"),
                Arguments.of("tcp://localhost:8800", "looks like a URL"),
                Arguments.of("udp:localhost:53", "the Java client knows: socks5, tcp, tls, unix"),
                Arguments.of("tcp:localhost", "expected 'tcp:HOST:PORT[:timeout=SECONDS]'"),
                Arguments.of("tcp:localhost:http", "port must be an integer from 1 to 65535"),
                Arguments.of("tcp:localhost:70000", "port must be an integer from 1 to 65535"),
                Arguments.of("tcp::8800", "host must not be empty"),
                Arguments.of("tcp:h:1:timeout=-1", "timeout must be a number of seconds"),
                Arguments.of("tcp:h:1:timeout=1:timeout=2", "gives timeout= twice"),
                Arguments.of("tcp:h:1:bind_address=x", "unknown keyword bind_address="),
                Arguments.of("tls:h:1:cert=c.pem:key=k.pem", "PBClient.Options.sslContext"),
                Arguments.of("unix:", "path must not be empty"),
                Arguments.of("unix:/s.sock:hostname=pb", "TLS over a Unix socket"),
                Arguments.of("unix:@abstract", "abstract"),
                Arguments.of("socks5:proxy:1080", "must be followed by the endpoint"),
                Arguments.of("socks5:proxy:1080:timeout=1", "must be followed by the endpoint"),
                Arguments.of("socks5:proxy", "the proxy's host and port, then the endpoint"),
                Arguments.of("socks5:proxy:1080:unix:/s.sock", "reaches tcp: and tls: servers"),
                Arguments.of("socks5:proxy:1080:server:8800", "not 'server:'"),
                Arguments.of("socks5:proxy:1080:user=u:password=p:tcp:h:1",
                        "java.net.Authenticator"),
                Arguments.of("socks5:proxy:1080:color=red:tcp:h:1", "unknown keyword color="),
                Arguments.of("socks5:a:1080:socks5:b:1080:tcp:h:1", "a tunnel inside a tunnel"),
                Arguments.of("connect:proxy:3128:tcp:h:1", "use socks5:"),
                Arguments.of("socks5:proxy:nope:tcp:h:1", "port must be an integer"),
                Arguments.of("tcp:h:1\\", "ends with a lone backslash"),
                // an unescaped '=' makes a keyword, in a path too (as in Python)
                Arguments.of("unix:/tmp/a=b.sock", "unknown keyword /tmp/a="));
    }

    @ParameterizedTest
    @MethodSource("invalid")
    void refusesWithAMessageThatSaysWhy(String spec, String says) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Endpoint.parse(spec));
        assertTrue(e.getMessage().contains(says), e.getMessage());
        assertTrue(e.getMessage().contains("'" + spec + "'"), "quotes the string: "
                + e.getMessage());
    }

    /** Any host or path, however full of colons, brackets, backslashes and '=', comes back. */
    @Test
    void everyValueSurvivesToStringAndParse() {
        Random random = new Random(1928);
        String alphabet = "ab.:[]=\\/@%- 0";
        for (int i = 0; i < 2000; i++) {
            String value = randomString(random, alphabet);
            Duration timeout = random.nextBoolean() ? null
                    : Duration.ofMillis(1 + random.nextInt(100_000));
            int port = 1 + random.nextInt(65535);
            Endpoint endpoint = switch (random.nextInt(4)) {
                case 0 -> new Endpoint.Tcp(value, port, timeout);
                case 1 -> new Endpoint.Tls(value, port, Path.of("ca" + value), value, timeout);
                case 2 -> new Endpoint.Unix(Path.of("/tmp/" + value), timeout);
                default -> new Endpoint.Socks5(value, port, timeout, new Endpoint.Tls(value,
                        port, null, null, timeout));
            };
            assertEquals(endpoint, Endpoint.parse(endpoint.toString()), endpoint.toString());
        }
    }

    /** The Java parser cuts strings into segments exactly as net.endpoints.parse does. */
    @Test
    void splitsExactlyAsThePythonParser() throws Exception {
        Random random = new Random(4711);
        List<String> specs = new ArrayList<>();
        for (int i = 0; i < 3000; i++) {
            specs.add("tcp:" + randomString(random, "a:[]=\\ b"));
        }
        String program = String.join("\n",
                "import json, sys",
                "from net.endpoints import parse",
                "out = []",
                "for spec in json.load(sys.stdin):",
                "    try:",
                "        prefix, args, kwargs = parse(spec)",
                "        out.append([prefix, args, list(kwargs.items())])",
                "    except ValueError:",
                "        out.append(None)",
                "print(json.dumps(out))");
        List<?> expected = runPython(program, specs);
        for (int i = 0; i < specs.size(); i++) {
            String spec = specs.get(i);
            Object fromPython = expected.get(i);
            Object java;
            try {
                EndpointParser.Parts parts = EndpointParser.parts(spec);
                List<Object> keywords = new ArrayList<>();
                parts.keywords().forEach((k, v) -> keywords.add(List.of(k, v)));
                java = List.of(parts.prefix(), parts.args(), keywords);
            } catch (IllegalArgumentException e) {
                java = null;
            }
            assertEquals(fromPython, java, spec);
        }
    }

    /**
     * The Python side reads every string the Java side accepts (and every string the Java side
     * writes) as the same place: host and port, path, proxy and inner endpoint.
     */
    @Test
    void thePythonSideReadsTheSameEndpoints() throws Exception {
        List<String> specs = new ArrayList<>();
        List<Endpoint> endpoints = new ArrayList<>();
        valid().forEach(a -> {
            String spec = (String) a.get()[0];
            if (!spec.contains("ca=")) { // Python loads the CA file at parse time
                Endpoint e = (Endpoint) a.get()[1];
                specs.add(spec);
                endpoints.add(e);
                specs.add(e.toString());
                endpoints.add(e);
            }
        });
        String program = String.join("\n",
                "import json, sys",
                "from net.endpoints import client",
                "def where(e):",
                "    if hasattr(e, 'inner'):",
                "        return [e.kind, e.host, e.port, where(e.inner)]",
                "    if hasattr(e, 'path'):",
                "        return ['unix', e.path]",
                "    return [type(e).__name__, e.host, e.port]",
                "print(json.dumps([where(client(None, s)) for s in json.load(sys.stdin)]))");
        List<?> fromPython = runPython(program, specs);
        for (int i = 0; i < specs.size(); i++) {
            assertEquals(where(endpoints.get(i)), fromPython.get(i), specs.get(i));
        }
    }

    private static List<Object> where(Endpoint e) {
        if (e instanceof Endpoint.Socks5 s) {
            return List.of("socks5", s.proxyHost(), (long) s.proxyPort(), where(s.target()));
        }
        if (e instanceof Endpoint.Unix u) {
            return List.of("unix", u.path().toString());
        }
        if (e instanceof Endpoint.Tls t) {
            return List.of("TLSClientEndpoint", t.host(), (long) t.port());
        }
        Endpoint.Tcp t = (Endpoint.Tcp) e;
        return List.of("TCPClientEndpoint", t.host(), (long) t.port());
    }

    /** Run a Python program in the checkout with {@code input} as JSON on stdin; its JSON out. */
    private static List<?> runPython(String program, List<String> input) throws Exception {
        Process p = new ProcessBuilder(PythonFixture.python(), "-c", program)
                .directory(PythonFixture.root().toFile()).start();
        try (var stdin = p.getOutputStream()) {
            stdin.write(toJson(input).getBytes(StandardCharsets.UTF_8));
        }
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String errors = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), errors);
        return (List<?>) WireVectorsTestAccess.parseJson(output);
    }

    private static String toJson(List<String> strings) {
        StringBuilder out = new StringBuilder("[");
        for (String s : strings) {
            out.append(out.length() > 1 ? "," : "").append('"')
                    .append(s.replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
        }
        return out.append(']').toString();
    }

    private static String randomString(Random random, String alphabet) {
        StringBuilder s = new StringBuilder();
        int length = 1 + random.nextInt(12);
        for (int i = 0; i < length; i++) {
            s.append(alphabet.charAt(random.nextInt(alphabet.length())));
        }
        return s.toString();
    }
}
