package org.pbroker;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.pbroker.Endpoint.Socks5;
import org.pbroker.Endpoint.Tcp;
import org.pbroker.Endpoint.Tls;
import org.pbroker.Endpoint.Unix;

/** Parses endpoint strings for {@link Endpoint#parse}, the way {@code net.endpoints.parse} does. */
final class EndpointParser {
    static final Pattern IPV6ISH = Pattern.compile("[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(%[\\w.]+)?");
    private static final Pattern URL = Pattern.compile("\\s*[A-Za-z][\\w+.-]*://.*",
            Pattern.DOTALL);
    private static final Pattern HOST_PORT = Pattern.compile(
            "(localhost|[\\w-]+(\\.[\\w-]+)+|\\[[0-9A-Fa-f:.]+\\]):\\d+");
    private static final Pattern IDENTIFIER = Pattern.compile("[A-Za-z_]\\w*");
    private static final Set<String> TYPES = new TreeSet<>(List.of("tcp", "tls", "unix",
            "socks5"));
    private static final Map<String, String> USAGE = Map.of(
            "tcp", "tcp:HOST:PORT[:timeout=SECONDS]",
            "tls", "tls:HOST:PORT[:ca=FILE][:hostname=NAME][:timeout=SECONDS]",
            "unix", "unix:PATH[:timeout=SECONDS]",
            "socks5", "socks5:PROXYHOST:PROXYPORT[:timeout=SECONDS]:INNER, INNER being "
                    + "tcp:HOST:PORT or tls:HOST:PORT[:ca=FILE][:hostname=NAME]");
    /** Tunnels of the Python side ({@code net.tunnels}) that the Java client does not have. */
    private static final Set<String> PYTHON_TUNNELS = Set.of("socks4", "socks4a", "connect");

    private EndpointParser() {
    }

    /** One {@code :}-separated piece: its text, and where its first unescaped '=' is. */
    private record Segment(String text, int equals) {
        boolean isKeyword() {
            return equals >= 0;
        }
    }

    static Endpoint parse(String spec) {
        Objects.requireNonNull(spec, "an endpoint is a string like 'tcp:HOST:8000'");
        if (URL.matcher(spec).matches()) {
            throw new IllegalArgumentException("endpoint '" + spec + "' looks like a URL; "
                    + "endpoint strings are TYPE:HOST:PORT without '//', e.g. 'tcp:HOST:8000'"
                    + " or 'unix:/PATH'");
        }
        List<Segment> segments = split(spec);
        String prefix = segments.get(0).text().strip().toLowerCase(Locale.ROOT);
        if (!IDENTIFIER.matcher(prefix).matches() || segments.size() == 1) {
            throw new IllegalArgumentException("endpoint '" + spec + "' needs a type prefix, "
                    + "e.g. 'tcp:HOST:8000' or 'unix:/PATH'" + suggestion(spec));
        }
        if (PYTHON_TUNNELS.contains(prefix)) {
            throw new IllegalArgumentException("endpoint '" + spec + "': the Java client has no "
                    + prefix + ": tunnels (java.net.Proxy speaks SOCKS5); use socks5:");
        }
        if (!TYPES.contains(prefix)) {
            throw new IllegalArgumentException("unknown endpoint type '" + prefix + "' in '"
                    + spec + "'; the Java client knows: " + String.join(", ", TYPES)
                    + suggestion(spec));
        }
        try {
            return build(prefix, segments.subList(1, segments.size()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("bad endpoint '" + spec + "': "
                    + e.getMessage() + "; expected '" + USAGE.get(prefix) + "'", e);
        }
    }

    /** What {@code net.endpoints.parse} returns for {@code spec}: type, positionals, keywords. */
    record Parts(String prefix, List<String> args, Map<String, String> keywords) {
    }

    /**
     * Split {@code spec} as {@code net.endpoints.parse} does, without building an endpoint (the
     * tests compare the two parsers with it).
     *
     * @throws IllegalArgumentException where the Python parser raises ValueError
     */
    static Parts parts(String spec) {
        List<Segment> segments = split(spec);
        List<String> args = new ArrayList<>();
        Map<String, String> keywords = new LinkedHashMap<>();
        collect(segments.subList(1, segments.size()), args, keywords);
        return new Parts(segments.get(0).text().strip().toLowerCase(Locale.ROOT), args,
                keywords);
    }

    private static String suggestion(String spec) {
        return HOST_PORT.matcher(spec).matches() || spec.matches("\\d+")
                ? "; did you mean 'tcp:" + spec + "'?" : "";
    }

    private static Endpoint build(String prefix, List<Segment> rest) {
        if (prefix.equals("socks5")) {
            return socks5(rest);
        }
        List<String> args = new ArrayList<>();
        Map<String, String> keywords = new LinkedHashMap<>();
        collect(rest, args, keywords);
        switch (prefix) {
            case "tcp": {
                expect(args, keywords, 2, Set.of("timeout"));
                return new Tcp(args.get(0), port(args.get(1)), timeout(keywords));
            }
            case "tls": {
                if (keywords.containsKey("cert") || keywords.containsKey("key")) {
                    throw new IllegalArgumentException("the Java client takes its client "
                            + "certificate from an SSLContext (PBClient.Options.sslContext), "
                            + "not from cert= and key=");
                }
                expect(args, keywords, 2, Set.of("ca", "hostname", "timeout"));
                String ca = keywords.get("ca");
                if (ca != null && ca.isEmpty()) {
                    throw new IllegalArgumentException("ca= must name a PEM file");
                }
                return new Tls(args.get(0), port(args.get(1)), ca == null ? null : Path.of(ca),
                        keywords.get("hostname"), timeout(keywords));
            }
            case "unix": {
                for (String tls : List.of("ca", "cert", "key", "hostname")) {
                    if (keywords.containsKey(tls)) {
                        throw new IllegalArgumentException("TLS over a Unix socket (" + tls
                                + "=) is not supported by the Java client; connect to a tls: "
                                + "endpoint, or use the Unix socket without TLS");
                    }
                }
                expect(args, keywords, 1, Set.of("timeout"));
                if (args.get(0).startsWith("@")) {
                    throw new IllegalArgumentException("Linux abstract socket names (@NAME) are "
                            + "not supported by Java's UnixDomainSocketAddress; listen on a path");
                }
                return new Unix(Path.of(args.get(0)), timeout(keywords));
            }
            default:
                throw new AssertionError(prefix);
        }
    }

    /** {@code PROXYHOST:PROXYPORT[:key=value...]:INNER}, as {@code net.tunnels} reads it. */
    private static Endpoint socks5(List<Segment> rest) {
        if (rest.size() < 2 || rest.get(0).isKeyword() || rest.get(1).isKeyword()) {
            throw new IllegalArgumentException("it needs the proxy's host and port, then the "
                    + "endpoint to reach through it");
        }
        String proxyHost = unbracket(rest.get(0).text());
        int proxyPort = port(rest.get(1).text());
        int inner = 2;
        while (inner < rest.size() && rest.get(inner).isKeyword()) {
            inner++;
        }
        Map<String, String> options = new LinkedHashMap<>();
        collect(rest.subList(2, inner), new ArrayList<>(), options);
        if (options.containsKey("user") || options.containsKey("password")) {
            throw new IllegalArgumentException("the Java client takes no user=/password=: it "
                    + "uses java.net.Proxy, whose SOCKS5 credentials come from the default "
                    + "java.net.Authenticator (requesting protocol \"SOCKS5\")");
        }
        expect(List.of(), options, 0, Set.of("timeout"));
        if (inner == rest.size()) {
            throw new IllegalArgumentException("it must be followed by the endpoint to reach "
                    + "through it, e.g. ...:tcp:HOST:PORT");
        }
        List<Segment> target = rest.subList(inner, rest.size());
        String type = target.get(0).text().strip().toLowerCase(Locale.ROOT);
        if (type.equals("socks5") || PYTHON_TUNNELS.contains(type)) {
            throw new IllegalArgumentException("a tunnel inside a tunnel (" + type + ":) is not "
                    + "supported by the Java client");
        }
        if (!type.equals("tcp") && !type.equals("tls")) {
            throw new IllegalArgumentException("a SOCKS5 proxy reaches tcp: and tls: servers "
                    + "only, not '" + type + ":'");
        }
        return new Socks5(proxyHost, proxyPort, timeout(options), build(type,
                target.subList(1, target.size())));
    }

    /** Positional values into {@code args}, {@code key=value} ones into {@code keywords}. */
    private static void collect(List<Segment> segments, List<String> args,
            Map<String, String> keywords) {
        for (Segment s : segments) {
            if (!s.isKeyword()) {
                args.add(unbracket(s.text()));
                continue;
            }
            String key = s.text().substring(0, s.equals());
            if (keywords.put(key, unbracket(s.text().substring(s.equals() + 1))) != null) {
                throw new IllegalArgumentException("it gives " + key + "= twice");
            }
        }
    }

    private static void expect(List<String> args, Map<String, String> keywords, int count,
            Set<String> known) {
        for (String key : keywords.keySet()) {
            if (!known.contains(key)) {
                throw new IllegalArgumentException("unknown keyword " + key + "= (known: "
                        + String.join(", ", new TreeSet<>(known)) + "; a '=' in a value is "
                        + "written \\=)");
            }
        }
        if (args.size() != count) {
            throw new IllegalArgumentException("it has " + args.size() + " positional value"
                    + (args.size() == 1 ? "" : "s") + ", not " + count);
        }
    }

    private static int port(String value) {
        int port;
        try {
            port = Integer.parseInt(value.strip());
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("port must be an integer from 1 to 65535, got '"
                    + value + "'");
        }
        return port;
    }

    private static Duration timeout(Map<String, String> keywords) {
        String value = keywords.get("timeout");
        if (value == null) {
            return null;
        }
        if (value.strip().equalsIgnoreCase("none") || value.isBlank()) {
            return Duration.ZERO;
        }
        double seconds;
        try {
            seconds = Double.parseDouble(value.strip());
        } catch (NumberFormatException e) {
            seconds = Double.NaN;
        }
        if (!(seconds > 0) || seconds > 1e9) {
            throw new IllegalArgumentException("timeout must be a number of seconds above 0 "
                    + "(or 'none'), got '" + value + "'");
        }
        return Duration.ofNanos(Math.max(1, Math.round(seconds * 1e9)));
    }

    /** The segments, as the Python parser cuts them: escapes, brackets, the first '='. */
    private static List<Segment> split(String spec) {
        List<Segment> segments = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        int equals = -1;
        int depth = 0;
        for (int i = 0; i < spec.length(); i++) {
            char c = spec.charAt(i);
            if (c == '\\') {
                if (++i == spec.length()) {
                    throw new IllegalArgumentException("endpoint '" + spec
                            + "' ends with a lone backslash");
                }
                text.append(spec.charAt(i));
            } else if (c == ':' && depth == 0) {
                segments.add(new Segment(text.toString(), equals));
                text.setLength(0);
                equals = -1;
            } else {
                if (c == '[') {
                    depth++;
                } else if (c == ']') {
                    depth = Math.max(0, depth - 1);
                } else if (c == '=' && equals < 0) {
                    equals = text.length();
                }
                text.append(c);
            }
        }
        segments.add(new Segment(text.toString(), equals));
        return segments;
    }

    private static String unbracket(String value) {
        return value.length() >= 2 && value.startsWith("[") && value.endsWith("]")
                ? value.substring(1, value.length() - 1) : value;
    }
}
