package org.pbroker.wire;

/**
 * The answer to a {@link Ping}, carrying its nonce (feature "heartbeat").
 *
 * @param nonce the ping's nonce
 */
public record Pong(long nonce) implements Message {
    /** Validates the fields. */
    public Pong {
        Wire.checkId("nonce", nonce);
    }

    @Override
    public int type() {
        return Wire.PONG;
    }
}
