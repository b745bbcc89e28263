package org.pbroker;

/**
 * A copyable arrived whose type name is not registered here (see
 * {@link PBClient#registerCopyable}); nothing is built from unregistered names.
 */
public class UnregisteredCopyException extends BrokerException {
    private static final long serialVersionUID = 1L;
    private final String typeName;

    /** @param typeName the unregistered type name */
    public UnregisteredCopyException(String typeName) {
        super("copyable type '" + typeName + "' is not registered here; register a class for it"
                + " with PBClient.registerCopyable(\"" + typeName + "\", SomeRecord.class)");
        this.typeName = typeName;
    }

    /** @return the type name that arrived */
    public String typeName() {
        return typeName;
    }
}
