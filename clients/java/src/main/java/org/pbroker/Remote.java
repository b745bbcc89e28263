package org.pbroker;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a public method of a {@link Referenceable} as callable by the peer. Only annotated methods
 * are callable: a reference is a capability for exactly these methods and nothing else.
 *
 * <pre>{@code
 * class Listener implements Referenceable {
 *     @Remote public void update(String key, long value) { ... }
 *     @Remote("get_name") public String name() { ... }
 * }
 * }</pre>
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
public @interface Remote {
    /** @return the remote name of the method; the Java name if empty */
    String value() default "";
}
