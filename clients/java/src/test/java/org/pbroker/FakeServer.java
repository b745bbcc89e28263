package org.pbroker;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.pbroker.wire.Hello;
import org.pbroker.wire.Message;
import org.pbroker.wire.Wire;
import org.pbroker.wire.WireDecoder;
import org.pbroker.wire.WireEncoder;

/** A scripted peer speaking the wire protocol, for client tests without the Python broker. */
final class FakeServer implements AutoCloseable {
    private final ServerSocket listener;
    private final BlockingQueue<Object> received = new LinkedBlockingQueue<>();
    private volatile Socket socket;
    private volatile DataOutputStream out;
    /** The optional features this peer announces and decodes (docs/PROTOCOL.md section 3.1). */
    private final List<String> features;

    FakeServer() throws IOException {
        this(List.of());
    }

    /** A peer announcing {@code features} ("heartbeat", "decrefs") in its hello. */
    FakeServer(List<String> features) throws IOException {
        this.features = List.copyOf(features);
        listener = new ServerSocket(0, 5, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::serve, "fake-server");
        t.setDaemon(true);
        t.start();
    }

    int port() {
        return listener.getLocalPort();
    }

    private void serve() {
        try {
            socket = listener.accept();
            out = new DataOutputStream(socket.getOutputStream());
            synchronized (this) {
                notifyAll();
            }
            DataInputStream in = new DataInputStream(socket.getInputStream());
            WireDecoder decoder = new WireDecoder(Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH,
                    Wire.DEFAULT_MAX_CONTAINER_LENGTH, WireDecoder.FrameLimits.defaults(), features,
                    true, null);
            while (true) {
                byte[] body = new byte[in.readInt()];
                in.readFully(body);
                received.add(decoder.decodeBody(body));
            }
        } catch (EOFException e) {
            received.add("EOF");
        } catch (IOException e) {
            received.add(e);
        }
    }

    private synchronized void awaitConnection() throws InterruptedException {
        while (out == null) {
            wait(10_000);
        }
    }

    /** The next message from the client (skipping nothing). */
    Object next() throws InterruptedException {
        Object m = received.poll(10, TimeUnit.SECONDS);
        if (m == null) {
            throw new AssertionError("no message from the client within 10 s");
        }
        return m;
    }

    /** The next message, which must be of {@code type}. */
    <T> T expect(Class<T> type) throws InterruptedException {
        Object m = next();
        if (!type.isInstance(m)) {
            throw new AssertionError("expected a " + type.getSimpleName() + ", got " + m);
        }
        return type.cast(m);
    }

    /** Read the client's hello and answer with ours. */
    Hello handshake() throws Exception {
        Hello hello = expect(Hello.class);
        send(new Hello(Wire.PROTOCOL_VERSION, Wire.DEFAULT_MAX_FRAME_SIZE, Wire.DEFAULT_MAX_DEPTH,
                Wire.DEFAULT_MAX_CONTAINER_LENGTH, features));
        return hello;
    }

    void send(Message m) throws Exception {
        sendRaw(new WireEncoder().encodeFrame(m));
    }

    synchronized void sendRaw(byte[] frame) throws Exception {
        awaitConnection();
        out.write(frame);
        out.flush();
    }

    void dropConnection() throws IOException {
        socket.close();
    }

    List<Object> drain() {
        List<Object> rest = new java.util.ArrayList<>();
        received.drainTo(rest);
        return rest;
    }

    @Override
    public void close() throws IOException {
        listener.close();
        if (socket != null) {
            socket.close();
        }
    }
}
