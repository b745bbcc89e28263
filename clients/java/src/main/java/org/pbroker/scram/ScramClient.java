package org.pbroker.scram;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Objects;
import javax.crypto.Mac;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * The client side of one SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), without I/O.
 *
 * <p>Call {@link #clientFirst()}, then {@link #clientFinal(String)} with the server's first
 * message, then {@link #verifyServerFinal(String)} with the server's final message; a failed step
 * ends the exchange. Only the no-channel-binding form (GS2 header {@code n,,}) is supported: run it
 * inside TLS for confidentiality. This mirrors {@code cred/scram.py}'s {@code ScramClient}.
 *
 * <pre>{@code
 * ScramClient scram = new ScramClient("alice", "secret");
 * String first = scram.clientFirst();                 // -> server
 * String fin = scram.clientFinal(serverFirst);        // -> server
 * scram.verifyServerFinal(serverFinal);               // throws if the server is an impostor
 * }</pre>
 *
 * <p>Not thread-safe: one exchange, one thread (or external synchronization).
 */
public final class ScramClient {
    /** The SASL mechanism name. */
    public static final String MECHANISM = "SCRAM-SHA-256";
    /** RFC 7677 section 4: fewer iterations are refused unless the caller lowers the minimum. */
    public static final int MIN_ITERATIONS = 4096;
    /** More iterations are refused, so a hostile server cannot make the client spin for minutes. */
    public static final int MAX_ITERATIONS = 10_000_000;
    /** Longest server message accepted. */
    public static final int MAX_MESSAGE_LENGTH = 8192;

    private static final String GS2_HEADER = "n,,";
    private static final int KEY_LENGTH = 32;
    private static final SecureRandom RANDOM = new SecureRandom();

    private enum State { START, FIRST_SENT, FINAL_SENT, DONE, FAILED }

    private final String username;
    private char[] password;
    private final String nonce;
    private final int minIterations;
    private final int maxIterations;
    private State state = State.START;
    private String clientFirstBare = "";
    private byte[] serverSignature = new byte[0];

    /**
     * A client with a random nonce and the default iteration bounds.
     *
     * @param username the user name (SASLprep is applied)
     * @param password the password (SASLprep is applied)
     * @throws IllegalArgumentException if either contains prohibited characters or the username is
     *     empty
     */
    public ScramClient(String username, String password) {
        this(username, password, null, MIN_ITERATIONS, MAX_ITERATIONS);
    }

    /**
     * A client with every parameter explicit.
     *
     * @param username the user name (SASLprep is applied)
     * @param password the password (SASLprep is applied)
     * @param nonce the client nonce, for test vectors only; {@code null} draws a random one
     * @param minIterations the lowest iteration count accepted from the server (tests may lower it)
     * @param maxIterations the highest iteration count accepted from the server
     * @throws IllegalArgumentException for an empty or prohibited username, a prohibited password,
     *     or a nonce that is not printable ASCII without ','
     */
    public ScramClient(String username, String password, String nonce, int minIterations,
            int maxIterations) {
        Objects.requireNonNull(username, "username");
        Objects.requireNonNull(password, "password");
        this.username = SaslPrep.prepare(username);
        if (this.username.isEmpty()) {
            throw new IllegalArgumentException("username must not be empty");
        }
        this.password = SaslPrep.prepare(password).toCharArray();
        this.nonce = nonce == null ? randomNonce() : nonce;
        if (!isValidNonce(this.nonce)) {
            throw new IllegalArgumentException("nonce must be printable ASCII without ','");
        }
        this.minIterations = minIterations;
        this.maxIterations = maxIterations;
    }

    /**
     * The first message: {@code n,,n=<user>,r=<client nonce>}.
     *
     * @return the client-first message
     * @throws IllegalStateException if called out of order
     */
    public String clientFirst() {
        advance(State.START, "clientFirst");
        clientFirstBare = "n=" + escapeUsername(username) + ",r=" + nonce;
        state = State.FIRST_SENT;
        return GS2_HEADER + clientFirstBare;
    }

    /**
     * Answer the server's challenge {@code r=<nonce>,s=<salt>,i=<count>} with the proof.
     *
     * @param serverFirst the server-first message
     * @return the client-final message {@code c=biws,r=<nonce>,p=<proof>}
     * @throws ScramException if the message is malformed, does not extend the client nonce, or asks
     *     for an iteration count outside the accepted range
     * @throws IllegalStateException if called out of order
     */
    public String clientFinal(String serverFirst) throws ScramException {
        advance(State.FIRST_SENT, "clientFinal");
        checkMessage(serverFirst, "server-first message");
        List<String[]> attrs = attributes(serverFirst, "server-first message");
        String serverNonce = expect(attrs, 0, "r", "server-first message");
        if (!isValidNonce(serverNonce)) {
            throw new ScramException(
                    "malformed server-first message: nonce must be printable ASCII without ','");
        }
        byte[] salt = unbase64(expect(attrs, 1, "s", "server-first message"), "salt");
        String count = expect(attrs, 2, "i", "server-first message");
        if (!serverNonce.startsWith(nonce) || serverNonce.length() == nonce.length()) {
            throw new ScramException("server nonce does not extend the client nonce");
        }
        if (salt.length == 0) {
            throw new ScramException("server sent an empty salt");
        }
        if (count.isEmpty() || count.length() > 9 || !count.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new ScramException("malformed iteration count " + abbreviate(count, 20));
        }
        int iterations = Integer.parseInt(count);
        if (iterations < minIterations || iterations > maxIterations) {
            throw new ScramException("server asked for " + iterations
                    + " iterations; this client accepts " + minIterations + ".." + maxIterations);
        }
        byte[] salted = saltedPassword(password, salt, iterations);
        Arrays.fill(password, '\0'); // not needed any more; do not keep it around
        password = null;
        byte[] clientKey = hmac(salted, "Client Key");
        String withoutProof = "c=" + b64(GS2_HEADER.getBytes(StandardCharsets.US_ASCII))
                + ",r=" + serverNonce;
        byte[] authMessage = (clientFirstBare + "," + serverFirst + "," + withoutProof)
                .getBytes(StandardCharsets.UTF_8);
        byte[] clientSignature = hmac(sha256(clientKey), authMessage);
        byte[] proof = new byte[KEY_LENGTH];
        for (int i = 0; i < KEY_LENGTH; i++) {
            proof[i] = (byte) (clientKey[i] ^ clientSignature[i]);
        }
        serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
        Arrays.fill(salted, (byte) 0);
        Arrays.fill(clientKey, (byte) 0);
        state = State.FINAL_SENT;
        return withoutProof + ",p=" + b64(proof);
    }

    /**
     * Check the server's signature {@code v=<signature>} (mutual authentication), in constant time.
     *
     * @param serverFinal the server-final message
     * @throws ScramException if the server reported an error ({@code e=}) or its signature does not
     *     verify: the server does not know the user's ServerKey, it is an impostor
     * @throws IllegalStateException if called out of order
     */
    public void verifyServerFinal(String serverFinal) throws ScramException {
        advance(State.FINAL_SENT, "verifyServerFinal");
        checkMessage(serverFinal, "server-final message");
        List<String[]> attrs = attributes(serverFinal, "server-final message");
        if (attrs.get(0)[0].equals("e")) {
            throw new ScramException("server reported an error: " + abbreviate(attrs.get(0)[1], 80));
        }
        byte[] signature = unbase64(expect(attrs, 0, "v", "server-final message"),
                "server signature");
        if (!MessageDigest.isEqual(signature, serverSignature)) {
            throw new ScramException(
                    "server signature does not verify: the server is not who it claims");
        }
        state = State.DONE;
    }

    /** @return true once the server has proved itself */
    public boolean isDone() {
        return state == State.DONE;
    }

    /** @return the prepared username this exchange authenticates */
    public String username() {
        return username;
    }

    // --- helpers ---------------------------------------------------------------------------

    private void advance(State expected, String method) {
        if (state != expected) {
            throw new IllegalStateException(
                    "ScramClient." + method + "() called in state " + state);
        }
        state = State.FAILED; // until the step succeeds
    }

    static String escapeUsername(String name) {
        return name.replace("=", "=3D").replace(",", "=2C");
    }

    private static String randomNonce() {
        byte[] bytes = new byte[18]; // 144 bits -> 24 base64url characters, none of them ','
        RANDOM.nextBytes(bytes);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    private static boolean isValidNonce(String n) {
        if (n.isEmpty()) {
            return false;
        }
        for (int i = 0; i < n.length(); i++) {
            char c = n.charAt(i);
            if (c < 0x21 || c > 0x7e || c == ',') {
                return false;
            }
        }
        return true;
    }

    private static void checkMessage(String message, String what) throws ScramException {
        if (message == null) {
            throw new ScramException(what + " is missing");
        }
        if (message.length() > MAX_MESSAGE_LENGTH) {
            throw new ScramException(what + " is longer than " + MAX_MESSAGE_LENGTH + " characters");
        }
    }

    /** Split {@code a=1,b=2} into [[a,1],[b,2]]; names are one ASCII letter. */
    private static List<String[]> attributes(String message, String what) throws ScramException {
        List<String[]> result = new ArrayList<>();
        for (String part : message.split(",", -1)) {
            if (part.length() < 2 || part.charAt(1) != '=' || !isAsciiLetter(part.charAt(0))) {
                throw new ScramException("malformed " + what + ": expected 'x=value', got "
                        + abbreviate(part, 40));
            }
            result.add(new String[] {part.substring(0, 1), part.substring(2)});
        }
        return result;
    }

    private static boolean isAsciiLetter(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }

    private static String expect(List<String[]> attrs, int index, String name, String what)
            throws ScramException {
        if (index >= attrs.size() || !attrs.get(index)[0].equals(name)) {
            if (!attrs.isEmpty() && attrs.get(0)[0].equals("m")) {
                throw new ScramException(
                        what + " carries a mandatory extension (m=), which is not supported");
            }
            throw new ScramException(
                    "malformed " + what + ": attribute " + (index + 1) + " must be '" + name + "='");
        }
        return attrs.get(index)[1];
    }

    private static String abbreviate(String s, int max) {
        return "'" + (s.length() > max ? s.substring(0, max) : s) + "'";
    }

    private static byte[] unbase64(String text, String what) throws ScramException {
        try {
            return Base64.getDecoder().decode(text);
        } catch (IllegalArgumentException e) {
            throw new ScramException(what + " is not valid base64: " + abbreviate(text, 40));
        }
    }

    private static String b64(byte[] data) {
        return Base64.getEncoder().encodeToString(data);
    }

    /**
     * SaltedPassword := Hi(Normalize(password), salt, i), i.e. PBKDF2-HMAC-SHA256 with one output
     * block. The JDK's PBKDF2 encodes the password characters as UTF-8, as RFC 5802 requires.
     */
    private static byte[] saltedPassword(char[] password, byte[] salt, int iterations) {
        PBEKeySpec spec = new PBEKeySpec(password, salt, iterations, KEY_LENGTH * 8);
        try {
            return SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec)
                    .getEncoded();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("PBKDF2WithHmacSHA256 is unavailable", e);
        } finally {
            spec.clearPassword();
        }
    }

    private static byte[] hmac(byte[] key, String message) {
        return hmac(key, message.getBytes(StandardCharsets.US_ASCII));
    }

    private static byte[] hmac(byte[] key, byte[] message) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(message);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is unavailable", e);
        }
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-256 is unavailable", e);
        }
    }
}
