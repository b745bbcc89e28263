package org.pbroker.wire;

/** A value carried as a msgpack ext type: a reference, a copy or a failure. */
public sealed interface WireValue permits ExportedRef, ReturnedRef, CopyState, FailureInfo,
        CacheRef, StreamRef {
    /** @return the ext type code */
    byte code();
}
