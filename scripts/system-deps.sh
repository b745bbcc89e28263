#!/usr/bin/env bash
# The Debian packages the test suite drives as real third-party programs:
#   dante-server  sockd, a SOCKS4/SOCKS5 proxy    (tests/test_tunnels.py, tests/test_broker_socks.py)
#   tinyproxy     an HTTP CONNECT proxy           (idem)
#   microsocks    a second, independent SOCKS5     (tests/test_tunnels.py)
#   postgresql    a real database server           (tests/test_adbapi_postgres.py, started by the test)
#   tmux          drives interactive clients       (the manhole and IRC-client tests)
#   irssi         a real IRC client                 (examples/chat tests)
#   chromium, chromium-driver  a real browser      (the chat example's signup page tests)
#   xvfb, xdotool  a virtual screen and clicks      (the GUI reactor and desktop client tests)
#   libgirepository1.0-dev, libcairo2-dev, pkg-config, gir1.2-gtk-3.0
#                 what PyGObject builds against, and GTK 3 (the glib reactor, tests/test_glib*.py)
#   libxcb-*, libxkbcommon-x11-0, libx11-xcb1, libegl1, libgl1, libfontconfig1, libdbus-1-3
#                 what Qt's xcb platform plugin loads (the Qt tests on Xvfb)
#
# Idempotent: says nothing when every package is installed. Otherwise installs the missing ones with
# apt-get, as root or through `sudo -n` (never prompting). Where that is impossible (not Debian, no
# root, no network) it says so and exits 0: the tests that need a missing program skip, naming it.
# The tests never use the packages' system services: they start their own instances, on free
# loopback ports, with generated configurations.
set -euo pipefail

packages=(dante-server tinyproxy microsocks postgresql tmux irssi chromium chromium-driver
          xvfb xdotool libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0
          libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 libxkbcommon-x11-0
          libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libx11-xcb1
          libegl1 libgl1 libfontconfig1 libdbus-1-3)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not a Debian-like system (no dpkg-query/apt-get); the tests needing" \
         "${packages[*]} will skip" >&2
    exit 0
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "system-deps: ${missing[*]} not installed and neither root nor password-less sudo;" \
         "install them with: sudo apt-get install ${missing[*]} (the tests needing them skip)" >&2
    exit 0
fi

install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive
         apt-get install -y -q --no-install-recommends "${missing[@]}")
echo "system-deps: installing ${missing[*]}"
if ! "${install[@]}" >/tmp/system-deps.$$.log 2>&1; then
    echo "system-deps: apt-get install failed; updating the package lists and trying again"
    if ! { "${as_root[@]}" apt-get update -q && "${install[@]}"; } >>/tmp/system-deps.$$.log 2>&1; then
        echo "system-deps: could not install ${missing[*]} (log below); the tests needing them skip" >&2
        tail -n 20 /tmp/system-deps.$$.log >&2
        rm -f /tmp/system-deps.$$.log
        exit 0
    fi
fi
rm -f /tmp/system-deps.$$.log
echo "system-deps: installed ${missing[*]}"
