"""A private X server for GUI tests: Xvfb, xdotool, and screenshots without ImageMagick.

Use it from a test module::

    from xvfb import xvfb_display, screenshot, xdotool   # xvfb_display is a pytest fixture

    def test_window(xvfb_display: str, tmp_path: Path) -> None:
        ...  # start the GUI with DISPLAY=xvfb_display (a subprocess, or os.environ in this one)
        window = xdotool(xvfb_display, "search", "--sync", "--name", "^My window$").split()[0]
        xdotool(xvfb_display, "mousemove", "--window", window, "20", "20", "click", "1")
        screenshot(xvfb_display, tmp_path / "window.png")

``xvfb_display`` starts ``Xvfb -displayfd FD -screen 0 1024x768x24 -nolisten tcp`` and reads the
display number Xvfb writes to FD once it accepts clients, so there is no sleep and no guessed
number (two test runs side by side each get a free display). It yields the ``DISPLAY`` string
(``":N"``) and afterwards kills and reaps the server; should the test process itself be killed
(a timeout's SIGKILL), Xvfb gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``), so none is
orphaned. ``xvfb_server()`` is the same as a context manager, for a fixture of another scope.

Screenshots come from the server itself, not from a toolkit: Xvfb is started with ``-fbdir``, which
keeps the screen in a memory-mapped XWD file, and ``screenshot`` turns that file into a PNG with
zlib alone. So a Qt, Tk or GTK window is shot the same way, whatever the toolkit, including what
the window manager-less root shows around it; neither ImageMagick's ``import`` nor ``xwd`` nor
Pillow is needed (Debian's xvfb package is all).

``close_window(display, window)`` asks a window to close the way a window manager's close button
does: a ``WM_DELETE_WINDOW`` client message (ICCCM). xdotool 3.2016's ``windowclose`` destroys the
window instead and ``windowkill`` kills the client, which is not what a user's click does; there is
no window manager under Xvfb to ask, so the message is sent here through libX11 (ctypes).

Both fixtures skip the test, with the package to install, when ``Xvfb`` or ``xdotool`` is missing
(``scripts/system-deps.sh`` installs them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest

__all__ = ["close_window", "require_x_tools", "screenshot", "xdotool", "xvfb_display", "xvfb_server"]

#: Framebuffer file of each server this process started, by DISPLAY string: ``screenshot`` reads it.
_framebuffers: dict[str, Path] = {}

_SCREEN = "1024x768x24"


def require_x_tools() -> None:
    """Skip the calling test unless Xvfb and xdotool are installed."""
    missing = [f"{tool} (Debian package {package})"
               for tool, package in (("Xvfb", "xvfb"), ("xdotool", "xdotool")) if shutil.which(tool) is None]
    if missing:
        pytest.skip("GUI tests need " + " and ".join(missing) + "; scripts/system-deps.sh installs them")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (a timeout),
    so no Xvfb outlives the run that started it (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG


@contextmanager
def xvfb_server() -> Iterator[str]:
    """A private Xvfb: yields its DISPLAY string once it accepts clients; killed and reaped after."""
    require_x_tools()
    with tempfile.TemporaryDirectory(prefix="pbroker-xvfb-") as fbdir:
        read_end, write_end = os.pipe()
        log_path = Path(fbdir) / "Xvfb.log"
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    ["Xvfb", "-displayfd", str(write_end), "-screen", "0", _SCREEN,
                     "-nolisten", "tcp", "-fbdir", fbdir],
                    pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    preexec_fn=_die_with_parent)
        except BaseException:
            os.close(read_end)
            os.close(write_end)
            raise
        os.close(write_end)  # Xvfb holds its copy: EOF here means it exited without a display
        try:
            with os.fdopen(read_end, "rb") as announcements:
                number = announcements.readline().strip()
            if not number.isdigit():
                proc.wait()
                raise RuntimeError(f"Xvfb exited (status {proc.returncode}) without announcing a display: "
                                   + log_path.read_text(errors="replace")[-2000:])
            display = ":" + number.decode()
            _framebuffers[display] = Path(fbdir) / "Xvfb_screen0"
            try:
                yield display
            finally:
                del _framebuffers[display]
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def xvfb_display() -> Iterator[str]:
    """The DISPLAY string (``":N"``) of a private Xvfb started for this test."""
    with xvfb_server() as display:
        yield display


def xdotool(display: str, *args: str, timeout: float = 30.0) -> str:
    """Run ``xdotool ARGS`` against ``display``; its stdout. A failure raises with xdotool's stderr.

    ``search --sync`` waits for a window to appear, so a test never sleeps until one is mapped;
    ``timeout`` only keeps a broken test from hanging."""
    env = {**os.environ, "DISPLAY": display}
    done = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"xdotool {' '.join(args)} failed on {display} (status {done.returncode}): "
                           f"{done.stderr.strip()}")
    return done.stdout


def screenshot(display: str, path: Path | str) -> Path:
    """Save the whole screen of ``display`` (an Xvfb started here) as a PNG at ``path``; the path."""
    try:
        framebuffer = _framebuffers[display]
    except KeyError:
        raise ValueError(f"no Xvfb started by tests/xvfb.py runs on {display!r}: screenshot() reads that "
                         "server's framebuffer file; start the display with xvfb_display/xvfb_server") from None
    width, height, rows = _read_xwd(framebuffer.read_bytes())
    path = Path(path)
    path.write_bytes(_png(width, height, rows))
    return path


def _read_xwd(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of a ZPixmap XWD image with 24 or 32 bits per pixel (Xvfb's)."""
    fields = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format = fields[0], fields[1], fields[2]
    width, height, byte_order = fields[4], fields[5], fields[7]
    bits_per_pixel, bytes_per_line = fields[11], fields[12]
    red_mask, green_mask, blue_mask = fields[14], fields[15], fields[16]
    ncolors = fields[19]
    if version != 7 or pixmap_format != 2 or bits_per_pixel not in (24, 32):
        raise ValueError(f"unsupported XWD framebuffer (version {version}, format {pixmap_format}, "
                         f"{bits_per_pixel} bits per pixel): start Xvfb with a 24-bit screen")
    pixels = header_size + 12 * ncolors
    step = bits_per_pixel // 8
    order: Literal["little", "big"] = "little" if byte_order == 0 else "big"
    shifts = [(mask, (mask & -mask).bit_length() - 1) for mask in (red_mask, green_mask, blue_mask)]
    rows = []
    for y in range(height):
        line = data[pixels + y * bytes_per_line:pixels + y * bytes_per_line + width * step]
        if bits_per_pixel == 32 and order == "little" and shifts == [(0xFF0000, 16), (0xFF00, 8), (0xFF, 0)]:
            # The usual case, fast: BGRX bytes; keep R, G, B.
            rgb = bytearray(width * 3)
            rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]
        else:
            rgb = bytearray()
            for x in range(width):
                value = int.from_bytes(line[x * step:(x + 1) * step], order)
                rgb.extend((value & mask) >> shift for mask, shift in shifts)
        rows.append(bytes(rgb))
    return width, height, rows


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG of ``rows``."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


class _ClientMessage(ctypes.Structure):
    """Xlib's XClientMessageEvent, padded to the size of an XEvent (24 longs)."""

    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int), ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 12)]


_CLIENT_MESSAGE = 33  # X.h: ClientMessage


def close_window(display: str, window: int | str) -> None:
    """Send ``window`` a WM_DELETE_WINDOW message, as a window manager's close button does."""
    window = int(window, 0) if isinstance(window, str) else window  # xdotool's decimal, Tk's "0x..."
    name = ctypes.util.find_library("X11")
    if name is None:
        pytest.skip("close_window needs libX11 (Debian package libx11-6)")
    xlib = ctypes.CDLL(name)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    xlib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                                ctypes.POINTER(_ClientMessage)]
    xlib.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    connection = xlib.XOpenDisplay(display.encode())
    if not connection:
        raise RuntimeError(f"cannot open X display {display!r} to close window {window}")
    try:
        event = _ClientMessage(type=_CLIENT_MESSAGE, send_event=1, display=connection, window=window,
                               message_type=xlib.XInternAtom(connection, b"WM_PROTOCOLS", 0), format=32)
        event.data[0] = xlib.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
        event.data[1] = 0  # CurrentTime
        if not xlib.XSendEvent(connection, window, 0, 0, ctypes.byref(event)):
            raise RuntimeError(f"XSendEvent of WM_DELETE_WINDOW to window {window} on {display} failed")
        xlib.XSync(connection, 0)
    finally:
        xlib.XCloseDisplay(connection)
