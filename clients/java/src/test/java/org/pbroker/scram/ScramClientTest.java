package org.pbroker.scram;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ScramClientTest {
    private static final String RFC_SERVER_FIRST =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    private static ScramClient rfcClient() {
        return new ScramClient("user", "pencil", "rOprNGfwEbeRWgbNEkqO", 4096, 10_000_000);
    }

    @Test
    void rfc7677Vector() throws Exception {
        ScramClient c = rfcClient();
        assertEquals("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", c.clientFirst());
        assertEquals("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                + "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", c.clientFinal(RFC_SERVER_FIRST));
        assertFalse(c.isDone());
        // RFC 7677 prints v=6rriTRBi23WpRR/wtup+mMhyWsWTX6d1PWYsDGzGv20=, which is wrong (RFC
        // errata): HMAC(ServerKey, AuthMessage) of its own inputs is the value below; Python's
        // hashlib computes the same.
        c.verifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assertTrue(c.isDone());
    }

    /** Expected values computed with the Python side's cred.scram (same salt, nonces, 4096). */
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "p\u00e4ssw\u00f6rd|2z/8UQTGvTKJz4eK73T0/swaVISflrOgkrZuTbi7BlU=|I/9ByNsexIkv6Ng6eoQlV4w9nprFzD5PdGEQS5GPEIE=",
        "I\u00adX|BysgbFvlF8hm+E+B739f9w4RuhYJGEQE7Rkwa9DcQ0I=|7tAg3KZSMD4j/4FRC4M2AD54e/1JQ4B2DiaRu3SZFGA=",
        "''|uNK94uWU2Mv1Llpq1KfhMqZ4ZWRrJS76eCTw3Qm8dkM=|D/q5PanlqVXhzYRTUU1L/quiL7yNkWn/KpT087LsDbY=",
    })
    void agreesWithPythonImplementation(String password, String proof, String signature)
            throws Exception {
        ScramClient c = new ScramClient("us=er,x", password, "abc", 4096, 4096);
        assertEquals("n,,n=us=3Der=2Cx,r=abc", c.clientFirst());
        assertEquals("c=biws,r=abcXYZ,p=" + proof,
                c.clientFinal("r=abcXYZ,s=c2FsdHNhbHRzYWx0c2FsdA==,i=4096"));
        c.verifyServerFinal("v=" + signature);
        assertTrue(c.isDone());
    }

    @Test
    void refusesForgedServerSignature() throws Exception {
        ScramClient c = rfcClient();
        c.clientFirst();
        c.clientFinal(RFC_SERVER_FIRST);
        ScramException e = assertThrows(ScramException.class,
                () -> c.verifyServerFinal("v=AAAATRBi23WpRR/wtup+mMhyWsWTX6d1PWYsDGzGv20="));
        assertTrue(e.getMessage().contains("does not verify"));
        assertFalse(c.isDone());
    }

    @Test
    void reportsServerError() throws Exception {
        ScramClient c = rfcClient();
        c.clientFirst();
        c.clientFinal(RFC_SERVER_FIRST);
        ScramException e = assertThrows(ScramException.class,
                () -> c.verifyServerFinal("e=invalid-proof"));
        assertTrue(e.getMessage().contains("invalid-proof"));
    }

    @Test
    void refusesNonceThatDoesNotExtendClientNonce() {
        ScramClient c = rfcClient();
        c.clientFirst();
        assertThrows(ScramException.class,
                () -> c.clientFinal("r=somethingElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
    }

    @Test
    void refusesUnextendedNonce() {
        ScramClient c = rfcClient();
        c.clientFirst();
        assertThrows(ScramException.class,
                () -> c.clientFinal("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
    }

    @Test
    void refusesTooFewIterationsUnlessAllowed() throws Exception {
        String lowFirst = "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1";
        ScramClient strict = rfcClient();
        strict.clientFirst();
        ScramException e = assertThrows(ScramException.class, () -> strict.clientFinal(lowFirst));
        assertTrue(e.getMessage().contains("iterations"));

        ScramClient lenient = new ScramClient("user", "pencil", "rOprNGfwEbeRWgbNEkqO", 1, 10);
        lenient.clientFirst();
        assertTrue(lenient.clientFinal(lowFirst).startsWith("c=biws,r=rOprNGfwEbeRWgbNEkqOxyz,p="));
    }

    @Test
    void refusesTooManyIterations() {
        ScramClient c = rfcClient();
        c.clientFirst();
        assertThrows(ScramException.class,
                () -> c.clientFinal("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "garbage",
        "r=rOprNGfwEbeRWgbNEkqOx,i=4096",
        "r=rOprNGfwEbeRWgbNEkqOx,s=!!!,i=4096",
        "r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096",
        "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
        "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
        "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    })
    void refusesMalformedServerFirst(String serverFirst) {
        ScramClient c = rfcClient();
        c.clientFirst();
        assertThrows(ScramException.class, () -> c.clientFinal(serverFirst));
    }

    @Test
    void stepsMustRunInOrder() {
        ScramClient c = rfcClient();
        assertThrows(IllegalStateException.class, () -> c.clientFinal(RFC_SERVER_FIRST));
        ScramClient d = rfcClient();
        d.clientFirst();
        assertThrows(IllegalStateException.class, d::clientFirst);
    }

    @Test
    void randomNoncesDiffer() {
        String a = new ScramClient("u", "p").clientFirst();
        String b = new ScramClient("u", "p").clientFirst();
        assertFalse(a.equals(b));
        assertTrue(a.startsWith("n,,n=u,r="));
    }

    @Test
    void saslPrep() {
        assertEquals("IX", SaslPrep.prepare("I\u00adX"));
        assertEquals("a b", SaslPrep.prepare("a\u00a0b"));
        assertEquals("IV", SaslPrep.prepare("\u2163"));
        assertThrows(IllegalArgumentException.class, () -> SaslPrep.prepare("a\u0007"));
        assertThrows(IllegalArgumentException.class, () -> SaslPrep.prepare("\u0627\u0031"));
        assertThrows(IllegalArgumentException.class, () -> new ScramClient("", "x"));
    }
}
