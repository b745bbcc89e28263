package org.pbroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.crypto.Mac;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.pbroker.scram.ScramException;
import org.pbroker.wire.Answer;
import org.pbroker.wire.Call;
import org.pbroker.wire.Decref;
import org.pbroker.wire.ErrorMessage;
import org.pbroker.wire.ExportedRef;
import org.pbroker.wire.FailureInfo;

/** PBClient.login against a scripted server running the server side of SCRAM-SHA-256. */
class LoginTest {
    private static final byte[] SALT = "saltsaltsaltsalt".getBytes(StandardCharsets.US_ASCII);
    private FakeServer server;
    private PBClient client;

    @BeforeEach
    void start() throws Exception {
        server = new FakeServer();
        client = PBClient.connect("127.0.0.1", server.port());
        server.handshake();
    }

    @AfterEach
    void stop() throws Exception {
        client.close();
        server.close();
    }

    private static byte[] hmac(byte[] key, String msg) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key, "HmacSHA256"));
        return mac.doFinal(msg.getBytes(StandardCharsets.UTF_8));
    }

    /** Runs the server side; returns the login call's request id after checking the proof. */
    private long serve(String password, boolean forgeSignature) throws Exception {
        Call start = server.expect(Call.class);
        assertEquals(PBClient.LOGIN_START, start.method());
        assertEquals(0, start.target());
        String clientFirst = (String) start.args().get(0);
        assertTrue(clientFirst.startsWith("n,,n=alice,r="), clientFirst);
        String bare = clientFirst.substring(3);
        String nonce = bare.substring(bare.indexOf(",r=") + 3) + "SERVER";
        String serverFirst = "r=" + nonce + ",s=" + Base64.getEncoder().encodeToString(SALT)
                + ",i=4096";
        server.send(new Answer(start.requestId(), serverFirst));

        Call finish = server.expect(Call.class);
        assertEquals(PBClient.LOGIN_FINISH, finish.method());
        String clientFinal = (String) finish.args().get(0);
        String withoutProof = clientFinal.substring(0, clientFinal.lastIndexOf(",p="));
        assertEquals("c=biws,r=" + nonce, withoutProof);
        byte[] proof = Base64.getDecoder().decode(
                clientFinal.substring(clientFinal.lastIndexOf(",p=") + 3));
        byte[] salted = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(
                new PBEKeySpec(password.toCharArray(), SALT, 4096, 256)).getEncoded();
        byte[] storedKey = MessageDigest.getInstance("SHA-256").digest(hmac(salted, "Client Key"));
        String authMessage = bare + "," + serverFirst + "," + withoutProof;
        byte[] signature = hmac(storedKey, authMessage);
        byte[] clientKey = new byte[32];
        for (int i = 0; i < 32; i++) {
            clientKey[i] = (byte) (proof[i] ^ signature[i]);
        }
        if (!Arrays.equals(MessageDigest.getInstance("SHA-256").digest(clientKey), storedKey)) {
            server.send(new ErrorMessage(finish.requestId(), new FailureInfo("failed",
                    "cred.error.UnauthorizedLogin", "login failed: invalid credentials", null)));
            return -1;
        }
        byte[] serverSig = hmac(hmac(salted, "Server Key"), authMessage);
        if (forgeSignature) {
            serverSig[0] ^= 1;
        }
        Map<String, Object> answer = new LinkedHashMap<>();
        answer.put("server_final", "v=" + Base64.getEncoder().encodeToString(serverSig));
        answer.put("avatar", new ExportedRef(3));
        server.send(new Answer(finish.requestId(), answer));
        return finish.requestId();
    }

    @Test
    void loginReturnsTheAvatar() throws Exception {
        CompletableFuture<RemoteReference> avatar = client.login("alice", "s3cret");
        serve("s3cret", false);
        RemoteReference ref = avatar.get(20, TimeUnit.SECONDS);
        assertEquals(3, ref.objectId());
    }

    @Test
    void wrongPasswordFailsWithTheServersError() throws Exception {
        CompletableFuture<RemoteReference> avatar = client.login("alice", "wrong");
        serve("s3cret", false);
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> avatar.get(20, TimeUnit.SECONDS));
        RemoteException r = assertInstanceOf(RemoteException.class, e.getCause());
        assertEquals("cred.error.UnauthorizedLogin", r.remoteType());
        assertEquals("login failed: invalid credentials", r.remoteMessage());
        assertEquals("failed", r.kind());
    }

    @Test
    void impostorServerIsRefusedAndTheAvatarReleased() throws Exception {
        CompletableFuture<RemoteReference> avatar = client.login("alice", "s3cret");
        serve("s3cret", true);
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> avatar.get(20, TimeUnit.SECONDS));
        assertInstanceOf(ScramException.class, e.getCause());
        assertEquals(new Decref(3, 1), server.expect(Decref.class));
        server.expect(org.pbroker.wire.Goodbye.class); // an impostor: the client hangs up
        assertTrue(!client.isConnected() || server.next().equals("EOF"));
    }
}
