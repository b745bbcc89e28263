package org.pbroker.wire;

/**
 * One wire message: the body of one frame. Records validate their fields on construction and
 * throw {@link IllegalArgumentException} (the decoder turns that into
 * {@link MalformedMessageException}).
 */
public sealed interface Message permits Hello, Goodbye, Call, Answer, ErrorMessage, Cancel, Decref,
        Decrefs, Ping, Pong, CacheUpdate, CacheRelease, Finish,
        StreamItems, StreamEnd, StreamCredit {
    /** @return the message type number (first element of the body array) */
    int type();
}
