package org.pbroker.wire;

/**
 * Are you there? The receiver answers at once with a {@link Pong} of the same nonce (feature
 * "heartbeat", docs/PROTOCOL.md sections 3.9 and 5.2).
 *
 * @param nonce chosen by the pinger, in 0..2^63-1
 */
public record Ping(long nonce) implements Message {
    /** Validates the fields. */
    public Ping {
        Wire.checkId("nonce", nonce);
    }

    @Override
    public int type() {
        return Wire.PING;
    }
}
