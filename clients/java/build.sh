#!/usr/bin/env bash
# Installer and build entry for the pbroker Java client.
#
#   bash clients/java/build.sh test     install what is missing, compile, run the JUnit suite
#   bash clients/java/build.sh package  same, then build target/pbroker-client-*.jar
#   bash clients/java/build.sh compile  install what is missing, compile target/classes only
#   bash clients/java/build.sh deps     only install the Debian packages
#
# Maven Central is not reachable: every jar and Maven plugin comes from Debian packages, which
# install into Debian's local Maven repository /usr/share/maven-repo; Maven runs offline against it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO=/usr/share/maven-repo
PACKAGES=(maven libmsgpack-java junit5 libmaven-compiler-plugin-java libsurefire-java
          libmaven-resources-plugin-java libmaven-jar-plugin-java
          microsocks)  # a real SOCKS5 proxy for Socks5InteropTest (the tests start their own)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

have_jdk17() {
    command -v javac >/dev/null 2>&1 || return 1
    local v
    v="$(javac -version 2>&1 | awk '{print $2}')"
    [ "${v%%.*}" -ge 17 ] 2>/dev/null
}

install_deps() {
    local missing=()
    have_jdk17 || missing+=(default-jdk-headless)
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "build.sh: installing ${missing[*]}" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >&2
    fi
}

mvn_offline() {
    (cd "$HERE" && mvn -o -B -q -Dstyle.color=never -Dmaven.repo.local="$REPO" "$@")
}

cmd="${1:-test}"
case "$cmd" in
    deps)
        install_deps
        ;;
    test)
        install_deps
        # Maven's INFO chatter is filtered out; the Surefire lines, warnings and errors stay, so the
        # output ends with the summary "Tests run: N, Failures: F, Errors: E, Skipped: S".
        shift || true
        (cd "$HERE" && mvn -o -B -Dstyle.color=never -Dmaven.repo.local="$REPO" "$@" test) 2>&1 \
            | { grep -E '^\[(ERROR|WARNING)\]|Tests run:|^\[INFO\] (Running|BUILD|T E S T S)|FAIL' || true; }
        ;;
    package)
        install_deps
        mvn_offline package
        ;;
    compile)
        install_deps
        mvn_offline compile
        ;;
    *)
        echo "usage: $0 [test|package|compile|deps]" >&2
        exit 2
        ;;
esac
