package org.pbroker.wire;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The caller is done with the answers of these questions (feature "pipelining",
 * docs/PROTOCOL.md section 15.2): the callee forgets the outcomes it kept for calls pipelined on
 * them. On the wire {@code [9, [question_id, ...]]}.
 *
 * @param questionIds at least one, each in 1..2^63-1, distinct, in wire order
 */
public record Finish(List<Long> questionIds) implements Message {
    /** Validates the fields and keeps an unmodifiable copy in order. */
    public Finish {
        if (questionIds == null || questionIds.isEmpty()) {
            throw new IllegalArgumentException("question_ids must not be empty");
        }
        List<Long> copy = new ArrayList<>(questionIds.size());
        Set<Long> seen = new HashSet<>();
        for (Long id : questionIds) {
            if (id == null) {
                throw new IllegalArgumentException("question ids must be ints");
            }
            long checked = Wire.checkId("question_id", id);
            if (checked == 0) {
                throw new IllegalArgumentException("question ids must be in 1..2**63-1");
            }
            if (!seen.add(checked)) {
                throw new IllegalArgumentException("question id " + checked + " appears twice");
            }
            copy.add(checked);
        }
        questionIds = Collections.unmodifiableList(copy);
    }

    @Override
    public int type() {
        return Wire.FINISH;
    }
}
