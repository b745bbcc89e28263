package org.pbroker;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A {@link PythonFixture} for one test class, registered as
 * {@code @RegisterExtension static final FixtureServer SERVER = new FixtureServer("fixture_server.py");}:
 * started before the class's first test (skipping the class without the project's Python), stopped
 * after its last, so the interop tests do not each repeat the start and stop.
 */
final class FixtureServer implements BeforeAllCallback, AfterAllCallback {
    private final String script;
    private final String[] args;
    private PythonFixture fixture;

    /** {@code src/test/resources/<script> args...}, started by the class that registers it. */
    FixtureServer(String script, String... args) {
        this.script = script;
        this.args = args.clone();
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        fixture = PythonFixture.start(script, args);
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        if (fixture != null) {
            fixture.close();
            fixture = null;
        }
    }

    /** The port the server printed for {@code name} ({@code "plain"}, {@code "login"}, ...). */
    int port(String name) {
        if (fixture == null) {
            throw new IllegalStateException(script + " is not running: register this with"
                    + " @RegisterExtension on a static field and use it from the class's tests");
        }
        return fixture.port(name);
    }

    /** A new client of the server's plain TCP port; the caller closes it. */
    PBClient connect() throws Exception {
        return PBClient.connect("127.0.0.1", port("plain"));
    }
}
