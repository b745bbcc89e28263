// Log in to the authenticated notes service (examples/authservice/server.py) from Java: TLS that
// trusts the development CA (host name verified), then SCRAM-SHA-256 login to the user's avatar.
//
//   PBROKER_PASSWORD=alice-pw java -cp clients/java/target/classes:/usr/share/java/msgpack-core.jar \
//       examples/java/NotesClient.java localhost 8801 certs/ca.pem alice "a note from Java"
//
// The password comes from PBROKER_PASSWORD (never an argument: ps would show it).

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.pbroker.PBClient;
import org.pbroker.RemoteException;
import org.pbroker.RemoteReference;

public class NotesClient {
    /** An SSLContext trusting only the CA certificate in {@code caPem}. */
    static SSLContext trusting(Path caPem) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (InputStream in = Files.newInputStream(caPem)) {
            trust.setCertificateEntry("ca",
                    CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, tmf.getTrustManagers(), null);
        return context;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: NotesClient HOST PORT CA_PEM USER [NOTE]");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        SSLContext tls = trusting(Path.of(args[2]));
        String user = args[3];
        String password = System.getenv().getOrDefault("PBROKER_PASSWORD", "");
        try (PBClient client = PBClient.connectTls(host, port, tls)) {
            RemoteReference me;
            try {
                me = client.login(user, password).get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RemoteException refused) {
                    System.out.println(user + ": " + refused.remoteMessage()
                            + " (" + refused.remoteType() + ")");
                    System.exit(1);
                }
                throw e;
            }
            if (args.length > 4) {
                me.callRemote("add_note", args[4]).get(10, TimeUnit.SECONDS);
                me.callRemote("post", args[4]).get(10, TimeUnit.SECONDS);
            }
            System.out.println(user + "'s notes: " + me.callRemote("list_notes").get(10, TimeUnit.SECONDS));
            RemoteReference board = me.callRemote(RemoteReference.class, "board").get(10, TimeUnit.SECONDS);
            System.out.println("board as " + user + " sees it: "
                    + board.callRemote("summary").get(10, TimeUnit.SECONDS));
        }
    }
}
