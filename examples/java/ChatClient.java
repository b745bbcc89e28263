// A console chat client for the chat server (examples/chat, served by `pbroker serve chat.app:service`):
// SCRAM login over the broker, rooms shared with IRC users, messages printed as they arrive.
//
//   PBROKER_PASSWORD=alice-pw java -cp clients/java/target/classes:/usr/share/java/msgpack-core.jar \
//       examples/java/ChatClient.java tcp:127.0.0.1:8800 alice lobby
//
// Arguments: the broker endpoint (tcp:HOST:PORT, tls:HOST:PORT:ca=ca.pem, unix:PATH), the user name,
// and optionally rooms to join at once. The password comes from PBROKER_PASSWORD, else it is asked
// on the terminal (never an argument: ps would show it). Each line read is a command or a message
// to the current room:
//
//   /join ROOM        join (and switch to) ROOM       /who             the current room's members
//   /part [REASON]    leave the current room          /switch ROOM     talk in another joined room
//   /msg NICK TEXT    a private message               /rooms           every room, like IRC's LIST
//   /topic [TEXT]     show or set the topic           /quit            leave (so does end of input)
//
// What it prints is one line per event, in the Python terminal client's format (examples/chat/client.py),
// so a script can read it:
//
//   logged in as alice                     [#lobby] <carol> a message     [#lobby] -carol- a notice
//   [#lobby] members: alice carol; topic: T    *carol* a private message     -> *carol* what we sent
//   [#lobby] carol joined    [#lobby] carol left (reason)    [#lobby] carol quit (reason)
//   [#lobby] carol set the topic: T    [#lobby] (earlier) <carol> history    ! an error    bye
//
// The server's call-backs run on one callback thread and only print; every call to the server (and
// every wait for its answer) is made from the main thread, which reads the input.

import java.io.BufferedReader;
import java.io.Console;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.pbroker.ConnectionLostException;
import org.pbroker.PBClient;
import org.pbroker.Referenceable;
import org.pbroker.Remote;
import org.pbroker.RemoteCache;
import org.pbroker.RemoteException;
import org.pbroker.RemoteReference;

public class ChatClient {
    /** How long one call to the server may take before the client gives up on it. */
    static final long CALL_SECONDS = 30;

    static final String HELP = String.join("\n",
            "/join ROOM        join (and switch to) ROOM       /who             the current room's members",
            "/part [REASON]    leave the current room          /switch ROOM     talk in another joined room",
            "/msg NICK TEXT    a private message               /rooms           every room, like IRC's LIST",
            "/topic [TEXT]     show or set the topic           /quit            leave (so does end of input)");

    /** Set before we close the connection ourselves: then its loss is no error. */
    static volatile boolean quitting;

    /** UTF-8 whatever the locale, flushed per line: a script reading us sees each line at once. */
    static final PrintStream OUT =
            new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

    static void say(String line) {
        OUT.println(line); // PrintStream locks per call: lines from two threads never interleave
    }

    /**
     * The server's live copy of a room's members and topic (pb.RoomMembers, a broker Cacheable):
     * updated by the server before the matching joined/parted call-back arrives.
     */
    public static class MemberList extends RemoteCache {
        private final List<String> members = new ArrayList<>();
        private String topic = "";

        public MemberList() {}

        @Override
        protected synchronized void setCopyableState(Object state) {
            if (state instanceof Map<?, ?> map) {
                members.clear();
                if (map.get("members") instanceof List<?> names) {
                    names.forEach(name -> members.add(String.valueOf(name)));
                }
                topic = map.get("topic") instanceof String t ? t : "";
            }
        }

        public synchronized void observe_joined(String nick) {
            if (!members.contains(nick)) {
                members.add(nick);
            }
        }

        public synchronized void observe_parted(String nick) {
            members.remove(nick);
        }

        public synchronized void observe_topic(String nick, String newTopic) {
            topic = newTopic;
        }

        synchronized List<String> members() {
            return new ArrayList<>(members);
        }

        synchronized String topic() {
            return topic;
        }
    }

    static {
        RemoteCache.register("examples.chat.RoomMembers", MemberList.class);
    }

    /** Our object for one room: the server calls it (one-way) for everything said and done there. */
    public static class Room implements Referenceable {
        private final String name;

        Room(String name) {
            this.name = name;
        }

        @Remote
        public void message(String sender, String text, boolean notice) {
            say(notice ? "[" + name + "] -" + sender + "- " + text
                    : "[" + name + "] <" + sender + "> " + text);
        }

        @Remote
        public void joined(String nick) {
            say("[" + name + "] " + nick + " joined");
        }

        @Remote
        public void parted(String nick, String reason) {
            say("[" + name + "] " + nick + " left" + because(reason));
        }

        @Remote
        public void quit(String nick, String reason) {
            say("[" + name + "] " + nick + " quit" + because(reason));
        }

        @Remote
        public void topic(String nick, String topic) {
            say("[" + name + "] " + nick + " set the topic: " + topic);
        }
    }

    /** The login "mind": private messages arrive here. */
    public static class Mind implements Referenceable {
        @Remote("private_message")
        public void privateMessage(String sender, String text, boolean notice) {
            say(notice ? "-" + sender + "- " + text : "*" + sender + "* " + text);
        }
    }

    static String because(String reason) {
        return reason == null || reason.isEmpty() ? "" : " (" + reason + ")";
    }

    static String roomName(String name) {
        return name.startsWith("#") ? name : "#" + name;
    }

    /** The answer of a call, or the exception that says why there is none. */
    static Object await(CompletableFuture<?> call) throws Exception {
        try {
            return call.get(CALL_SECONDS, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception cause ? cause : e;
        } catch (TimeoutException e) {
            throw new TimeoutException("the server did not answer within " + CALL_SECONDS + " s");
        }
    }

    private final RemoteReference avatar;
    private final Map<String, RemoteReference> rooms = new LinkedHashMap<>(); // name -> RoomHandle
    private final Map<String, MemberList> members = new LinkedHashMap<>();
    private String current;

    ChatClient(RemoteReference avatar) {
        this.avatar = avatar;
    }

    void join(String rawName) throws Exception {
        String name = roomName(rawName);
        RemoteReference handle = (RemoteReference) await(avatar.callRemote("join", name, new Room(name)));
        RemoteReference previous = rooms.put(name, handle);
        if (previous != null && previous != handle) {
            previous.close();
        }
        current = name;
        MemberList list = (MemberList) await(handle.callRemote("members"));
        members.put(name, list); // the same object again if we were here before (kept since)
        for (Object line : (List<?>) await(handle.callRemote("history"))) {
            List<?> entry = (List<?>) line; // [when, sender, text]
            say("[" + name + "] (earlier) <" + entry.get(1) + "> " + entry.get(2));
        }
        String topic = list.topic();
        say("[" + name + "] members: " + String.join(" ", list.members())
                + (topic.isEmpty() ? "" : "; topic: " + topic));
    }

    /** Run one input line; false once the user asked to quit. */
    boolean command(String line) throws Exception {
        if (!line.startsWith("/")) {
            if (current == null) {
                say("! join a room first: /join ROOM");
            } else {
                await(rooms.get(current).callRemote("say", line));
            }
            return true;
        }
        String[] parts = line.substring(1).split(" ", 2);
        String verb = parts[0].toLowerCase();
        String rest = parts.length > 1 ? parts[1].strip() : "";
        switch (verb) {
            case "quit" -> {
                return false;
            }
            case "join" -> {
                if (rest.isEmpty()) {
                    say("! usage: /join ROOM");
                } else {
                    join(rest);
                }
            }
            case "part" -> {
                if (current == null) {
                    say("! you are in no room");
                } else {
                    String room = current;
                    await(rooms.get(room).callRemote("part", rest));
                    rooms.remove(room).close();
                    // The room's member list is kept, not released: a release is sent later, in
                    // a batch, so a /join right after could get the list from the server while
                    // ours is already gone ("the crossing release", docs/PROTOCOL.md 16.4).
                    current = rooms.isEmpty() ? null : rooms.keySet().iterator().next();
                }
            }
            case "msg" -> {
                String[] target = rest.split(" ", 2);
                if (target.length < 2 || target[1].isBlank()) {
                    say("! usage: /msg NICK TEXT");
                } else {
                    await(avatar.callRemote("private_message", target[0], target[1]));
                    say("-> *" + target[0] + "* " + target[1]);
                }
            }
            case "topic" -> {
                if (current == null) {
                    say("! you are in no room");
                } else if (!rest.isEmpty()) {
                    await(rooms.get(current).callRemote("set_topic", rest));
                } else {
                    Map<?, ?> topic = (Map<?, ?>) await(rooms.get(current).callRemote("topic"));
                    Object text = topic.get("topic");
                    say("[" + current + "] topic: "
                            + (text == null || "".equals(text) ? "(none)" : text));
                }
            }
            case "who" -> {
                MemberList list = current == null ? null : members.get(current);
                if (list == null) {
                    say("! you are in no room");
                } else {
                    say("[" + current + "] members: " + String.join(" ", list.members()));
                }
            }
            case "switch" -> {
                String name = roomName(rest);
                if (rooms.containsKey(name)) {
                    current = name;
                    say("talking in " + name);
                } else {
                    say("! you are not in " + name + ": /join it first");
                }
            }
            case "rooms" -> {
                for (Object room : (List<?>) await(avatar.callRemote("rooms"))) {
                    Map<?, ?> r = (Map<?, ?>) room;
                    say(r.get("name") + " (" + r.get("members") + ") " + r.get("topic"));
                }
            }
            default -> say(HELP);
        }
        return true;
    }

    /** {@link #command}, with a refused command (or one the server did not answer) reported, not fatal. */
    boolean run(String line) throws Exception {
        try {
            return command(line);
        } catch (RemoteException e) {
            say("! " + e.remoteMessage()); // the server refused this one command: say why, go on
        } catch (TimeoutException e) {
            say("! " + e.getMessage());
        }
        return true;
    }

    static String password(String user) {
        String password = System.getenv("PBROKER_PASSWORD");
        if (password != null) {
            return password;
        }
        Console console = System.console();
        if (console == null) {
            System.err.println("ChatClient: no terminal to ask the password on: set PBROKER_PASSWORD");
            System.exit(2);
        }
        char[] typed = console.readPassword("password for %s: ", user);
        if (typed == null) {
            System.exit(1);
        }
        return new String(typed);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: ChatClient ENDPOINT USER [ROOM...]   (e.g. tcp:127.0.0.1:8800 alice lobby;"
                    + " the password from PBROKER_PASSWORD or the terminal)");
            System.exit(2);
        }
        String endpoint = args[0];
        String user = args[1];
        String password = password(user);
        // One thread runs the server's call-backs and the member lists' updates alike, so they keep
        // the server's order (by default updates have a thread of their own, and a "left" line
        // could be printed before the member list had lost that member).
        ExecutorService callbacks = Executors.newSingleThreadExecutor(task -> {
            Thread thread = new Thread(task, "chat-callbacks");
            thread.setDaemon(true);
            return thread;
        });
        PBClient.Options options = PBClient.Options.defaults().executor(callbacks).cacheExecutor(callbacks);
        PBClient connection;
        try {
            connection = PBClient.connect(endpoint, options);
        } catch (IOException | IllegalArgumentException e) {
            System.err.println("ChatClient: " + e.getMessage()); // names the endpoint and what to check
            System.exit(1);
            return;
        }
        try (PBClient client = connection) {
            RemoteReference avatar;
            try {
                avatar = (RemoteReference) await(client.login(user, password, new Mind()));
            } catch (RemoteException refused) {
                System.err.println(user + ": login failed: " + refused.remoteMessage());
                System.exit(1);
                return;
            }
            client.addDisconnectListener(reason -> {
                if (!quitting) {
                    say("! the connection to the server is gone: " + reason.getMessage());
                    System.exit(1);
                }
            });
            say("logged in as " + user + "; /help lists the commands");
            ChatClient chat = new ChatClient(avatar);
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            try {
                for (int i = 2; i < args.length; i++) {
                    chat.run("/join " + args[i]);
                }
                for (String line; (line = in.readLine()) != null; ) {
                    line = line.strip();
                    if (!line.isEmpty() && !chat.run(line)) {
                        break;
                    }
                }
            } catch (ConnectionLostException e) {
                say("! the connection to the server is gone");
                System.exit(1);
            }
            quitting = true;
        }
        say("bye");
    }
}
