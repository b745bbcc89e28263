package org.pbroker.scram;

import java.text.Normalizer;

/**
 * SASLprep (RFC 4013): the string preparation SCRAM applies to usernames and passwords, so that
 * the same typed text gives the same bytes on client and server.
 *
 * <p>Steps: map non-ASCII spaces (RFC 3454 C.1.2) to U+0020 and remove "commonly mapped to
 * nothing" characters (B.1); normalize with NFKC; refuse prohibited characters (C.1.2-C.9); check
 * bidirectional text (RFC 3454 section 6). Unassigned code points are allowed (the "query" profile),
 * like the Python implementation in {@code cred/saslprep.py}. The JDK's Unicode tables are newer
 * than Unicode 3.2; for printable ASCII (the common case) the result is the input unchanged.
 */
public final class SaslPrep {
    private SaslPrep() {}

    /**
     * Prepare {@code text}.
     *
     * @param text a username or password
     * @return the prepared string
     * @throws IllegalArgumentException naming a prohibited character or a bidi violation
     */
    public static String prepare(String text) {
        if (isPrintableAscii(text)) {
            return text;
        }
        StringBuilder mapped = new StringBuilder(text.length());
        text.codePoints().forEach(cp -> {
            if (isNonAsciiSpace(cp)) {
                mapped.append(' ');
            } else if (!isMappedToNothing(cp)) {
                mapped.appendCodePoint(cp);
            }
        });
        String prepared = Normalizer.normalize(mapped, Normalizer.Form.NFKC);
        boolean anyRtl = false;
        boolean anyLtr = false;
        int[] cps = prepared.codePoints().toArray();
        for (int cp : cps) {
            if (isProhibited(cp)) {
                throw new IllegalArgumentException(
                        String.format("prohibited character U+%04X in SASLprep input", cp));
            }
            anyRtl |= isRandAL(cp);
            anyLtr |= isL(cp);
        }
        if (anyRtl) {
            if (anyLtr) {
                throw new IllegalArgumentException(
                        "SASLprep input mixes right-to-left and left-to-right text");
            }
            if (!isRandAL(cps[0]) || !isRandAL(cps[cps.length - 1])) {
                throw new IllegalArgumentException(
                        "right-to-left SASLprep input must start and end with an RTL character");
            }
        }
        return prepared;
    }

    private static boolean isPrintableAscii(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                return false;
            }
        }
        return true;
    }

    /** RFC 3454 table C.1.2. */
    private static boolean isNonAsciiSpace(int cp) {
        return cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x202F
                || cp == 0x205F || cp == 0x3000;
    }

    /** RFC 3454 table B.1. */
    private static boolean isMappedToNothing(int cp) {
        return cp == 0x00AD || cp == 0x034F || cp == 0x1806 || (cp >= 0x180B && cp <= 0x180D)
                || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || (cp >= 0xFE00 && cp <= 0xFE0F)
                || cp == 0xFEFF;
    }

    /** RFC 3454 tables C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9. */
    private static boolean isProhibited(int cp) {
        if (isNonAsciiSpace(cp)) {
            return true; // C.1.2
        }
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
            return true; // C.2.1, C.2.2 (C0/C1 controls)
        }
        if (cp == 0x06DD || cp == 0x070F || cp == 0x180E || cp == 0x200C || cp == 0x200D
                || cp == 0x2028 || cp == 0x2029 || (cp >= 0x2060 && cp <= 0x2063)
                || (cp >= 0x206A && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFC)
                || (cp >= 0x1D173 && cp <= 0x1D17A)) {
            return true; // C.2.2 other controls
        }
        if ((cp >= 0xE000 && cp <= 0xF8FF) || (cp >= 0xF0000 && cp <= 0xFFFFD)
                || (cp >= 0x100000 && cp <= 0x10FFFD)) {
            return true; // C.3 private use
        }
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
            return true; // C.4 non-characters
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            return true; // C.5 surrogates
        }
        if (cp >= 0xFFF9 && cp <= 0xFFFD) {
            return true; // C.6 inappropriate for plain text
        }
        if (cp >= 0x2FF0 && cp <= 0x2FFB) {
            return true; // C.7 inappropriate for canonical representation
        }
        if (cp == 0x0340 || cp == 0x0341 || cp == 0x200E || cp == 0x200F
                || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x206A && cp <= 0x206F)) {
            return true; // C.8 change display properties / deprecated
        }
        return cp == 0xE0001 || (cp >= 0xE0020 && cp <= 0xE007F); // C.9 tagging characters
    }

    /** RFC 3454 D.1: characters with bidi property R or AL. */
    private static boolean isRandAL(int cp) {
        byte d = Character.getDirectionality(cp);
        return d == Character.DIRECTIONALITY_RIGHT_TO_LEFT
                || d == Character.DIRECTIONALITY_RIGHT_TO_LEFT_ARABIC;
    }

    /** RFC 3454 D.2: characters with bidi property L. */
    private static boolean isL(int cp) {
        return Character.getDirectionality(cp) == Character.DIRECTIONALITY_LEFT_TO_RIGHT;
    }
}
