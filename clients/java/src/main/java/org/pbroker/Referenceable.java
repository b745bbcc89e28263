package org.pbroker;

import java.util.List;
import java.util.Map;

/**
 * A Java object passed <em>by reference</em>: the peer receives a reference it can call back
 * through. Its methods annotated with {@link Remote} are callable by the peer; nothing else is.
 *
 * <p>Remote methods run on the client's callback executor, never on the socket reader. Arguments
 * are converted to the parameter types (wire integers to {@code int}/{@code long}/..., lists to
 * {@code List}/arrays, copies to their registered classes). A method may return a value, a
 * {@link java.util.concurrent.CompletionStage} (the answer is sent when it completes), or throw:
 * the peer gets the exception's class name and message (a thrown {@link RemoteException} keeps its
 * kind and remote type).
 *
 * <p>Override {@link #remoteMessageReceived} to dispatch by hand (keyword arguments, dynamic
 * method names).
 */
public interface Referenceable {
    /**
     * Dispatch one call from the peer. The default finds the {@link Remote} method by name and
     * argument count and converts the arguments; keyword arguments are refused.
     *
     * @param method the remote method name
     * @param args positional arguments as decoded
     * @param kwargs keyword arguments as decoded
     * @return the result, or a CompletionStage of it
     * @throws Exception whatever the method throws; {@link UnimplementedException} if there is no
     *     such remote method
     */
    default Object remoteMessageReceived(String method, List<Object> args,
            Map<String, Object> kwargs) throws Exception {
        return RemoteDispatch.invoke(this, method, args, kwargs);
    }
}
