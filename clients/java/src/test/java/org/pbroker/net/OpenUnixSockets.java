package org.pbroker.net;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * The Unix domain sockets this process holds open, as {@code "fd -> socket:[inode]"} (from
 * /proc/self/fd and /proc/net/unix). Tests compare the set before and after: counting every
 * descriptor would also count what other tests' threads and processes open and close meanwhile.
 */
public final class OpenUnixSockets {
    private OpenUnixSockets() {
    }

    /** @return the open Unix sockets of this process */
    public static Set<String> now() throws IOException {
        Set<String> unixInodes = new HashSet<>();
        List<String> lines = Files.readAllLines(Path.of("/proc/net/unix"));
        for (String line : lines.subList(1, lines.size())) {
            String[] fields = line.trim().split("\\s+");
            if (fields.length > 6) {
                unixInodes.add(fields[6]);
            }
        }
        Set<String> open = new TreeSet<>();
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                String target;
                try {
                    target = Files.readSymbolicLink(fd).toString();
                } catch (IOException closedMeanwhile) {
                    continue;
                }
                if (target.startsWith("socket:[") && unixInodes.contains(
                        target.substring("socket:[".length(), target.length() - 1))) {
                    open.add(fd.getFileName() + " -> " + target);
                }
            }
        }
        return open;
    }

    /** @return the Unix sockets open now that were not in {@code before} */
    public static Set<String> openedSince(Set<String> before) throws IOException {
        Set<String> opened = now();
        opened.removeAll(before);
        return opened;
    }
}
