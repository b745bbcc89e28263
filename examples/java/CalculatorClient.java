// The Python calculator (examples/calculator/server.py) from Java, with the pbroker Java client.
//
//   java -cp clients/java/target/classes:/usr/share/java/msgpack-core.jar \
//       examples/java/CalculatorClient.java 127.0.0.1 8800
//
// (Java 11+ runs a single source file directly.) examples/java/run.sh does it all: builds the
// client if needed, starts the server on a free port, runs this, stops the server.

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.pbroker.PBClient;
import org.pbroker.RemoteException;
import org.pbroker.RemoteReference;

public class CalculatorClient {
    /** The Python dataclass calculator.Vector (examples/calculator/shared.py), by copy. */
    public record Vector(double x, double y) {}

    public static void main(String[] args) throws Exception {
        String host = args.length > 0 ? args[0] : "127.0.0.1";
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 8800;
        try (PBClient client = PBClient.connect(host, port)) {
            client.registerCopyable("calculator.Vector", Vector.class);
            RemoteReference calc = client.getRootObject().get(10, TimeUnit.SECONDS);

            double sum = calc.callRemote(Double.class, "add", 1, 2.5).get(10, TimeUnit.SECONDS);
            System.out.println("add(1, 2.5) = " + sum);

            double squares = calc.callRemote(Double.class, "sum", List.of(1, 2, 3))
                    .get(10, TimeUnit.SECONDS); // a coroutine on the server
            System.out.println("sum of squares of [1, 2, 3] = " + squares);

            Vector scaled = calc.callRemote(Vector.class, "scale", new Vector(1, 2), 3.0)
                    .get(10, TimeUnit.SECONDS);
            System.out.println("scale(Vector(1, 2), 3) = " + scaled);
            double norm = calc.callRemote(Double.class, "norm", new Vector(3, 4))
                    .get(10, TimeUnit.SECONDS);
            System.out.println("norm(Vector(3, 4)) = " + norm);

            // a reference to an object only this client holds
            RemoteReference memory = calc.callRemote(RemoteReference.class, "memory")
                    .get(10, TimeUnit.SECONDS);
            memory.callRemote("store", 42.5).get(10, TimeUnit.SECONDS);
            System.out.println("memory recalls " + memory.callRemote("recall").get(10, TimeUnit.SECONDS));
            memory.close(); // released on the server

            try {
                calc.callRemote("divide", 1, 0).get(10, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                RemoteException error = (RemoteException) e.getCause();
                System.out.println("divide(1, 0) failed: " + error.remoteType() + " - "
                        + error.remoteMessage());
            }
        }
    }
}
