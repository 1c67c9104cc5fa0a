"""``osdp://``: facegate as an OSDP peripheral device (a reader) on an access-control panel.

The most common way a face terminal joins an existing system: the panel polls its readers on
RS-485, and on an ``allow`` facegate reports the person's card number as if the card had been
presented; the panel applies its own rules and releases the door. Nothing biometric crosses
the wire, only the card number the panel already knows.

Spec::

    osdp:///dev/ttyUSB0?address=101&baud=9600&scbk=<32 hex digits>[&format=raw|wiegand26|wiegand34]
    osdp://10.0.0.5:4001?address=101&scbk_file=/etc/facegate/osdp.key   (an RS-485 server)

Secure Channel is always on (``scbk`` or ``scbk_file``, the panel's SCBK for this reader;
the reader refuses plain-text traffic): the card number is encrypted on the bus (CAC-FR-14).
The protocol is LibOSDP (``libosdp`` on PyPI, Apache-2.0).
"""

from __future__ import annotations

import contextlib
import os
import socket
import termios
import threading
import tty
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from facegate.edge.doors import DoorCommand, DoorDriver, DoorError, DoorSpecError

_BAUDS = {
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
}
FORMATS = ("raw", "wiegand26", "wiegand34")


def _channel_base() -> type:
    from osdp import Channel

    return Channel


def serial_channel(path: str, baud: int) -> Any:
    """A LibOSDP channel on a serial device (or a pty), raw 8N1, non-blocking."""

    class SerialChannel(_channel_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            try:
                self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as exc:
                raise DoorError(f"cannot open the OSDP line {path}: {exc.strerror}") from None
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[4] = attrs[5] = _BAUDS[baud]  # ispeed, ospeed
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

        def read(self, max_bytes: int) -> bytes:
            try:
                return os.read(self.fd, max_bytes)
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError:
                return b""

        def write(self, buf: bytes) -> int:
            try:
                return os.write(self.fd, buf)
            except (BlockingIOError, InterruptedError):
                return 0
            except OSError:
                return 0

        def flush(self) -> None:
            with contextlib.suppress(OSError):
                termios.tcdrain(self.fd)

        def close(self) -> None:
            with contextlib.suppress(OSError):
                os.close(self.fd)

    return SerialChannel()


def socket_channel(sock: socket.socket) -> Any:
    """A LibOSDP channel on a connected stream socket (an RS-485-to-TCP server, a test)."""

    class SocketChannel(_channel_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.sock = sock
            sock.setblocking(False)

        def read(self, max_bytes: int) -> bytes:
            try:
                return self.sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError:
                return b""

        def write(self, buf: bytes) -> int:
            try:
                return self.sock.send(buf)
            except (BlockingIOError, InterruptedError):
                return 0
            except OSError:
                return 0

        def flush(self) -> None:
            pass

        def close(self) -> None:
            self.sock.close()

    return SocketChannel()


def card_bits(number: str, fmt: str) -> tuple[bytes, int]:
    """The card number as OSDP raw card data: (bytes, length in bits).

    ``raw``: the decimal number big-endian in whole bytes. ``wiegand26``: facility code
    (bits 16-23 of the number) and card (bits 0-15) with the standard even/odd parity;
    ``wiegand34`` likewise with 16 + 16 bits."""
    if not number.isdigit():
        raise DoorError(f"card number {number!r} is not decimal; OSDP raw formats need digits")
    value = int(number)
    if fmt == "raw":
        nbytes = max(1, (value.bit_length() + 7) // 8)
        return value.to_bytes(nbytes, "big"), nbytes * 8
    payload_bits = {"wiegand26": 24, "wiegand34": 32}[fmt]
    if value >= 1 << payload_bits:
        raise DoorError(f"card number {number} does not fit {fmt} ({payload_bits} data bits)")
    bits = [(value >> i) & 1 for i in range(payload_bits - 1, -1, -1)]
    half = payload_bits // 2
    even = sum(bits[:half]) % 2  # leading parity makes the first half even
    odd = 1 - sum(bits[half:]) % 2  # trailing parity makes the second half odd
    frame = [even, *bits, odd]
    n = len(frame)
    as_int = int("".join(map(str, frame)), 2) << ((8 - n % 8) % 8)  # left-aligned
    return as_int.to_bytes((n + 7) // 8, "big"), n


def decode_card(data: bytes, length: int, fmt: str) -> str:
    """The inverse of ``card_bits`` (what a panel does): card number as a decimal string."""
    value = int.from_bytes(data, "big")
    if fmt == "raw":
        return str(value)
    extra = len(data) * 8 - length
    frame = value >> extra
    return str((frame >> 1) & ((1 << (length - 2)) - 1))


class OsdpDoor(DoorDriver):
    schemes = ("osdp",)

    def __init__(self, spec: str, *, channel: Any | None = None) -> None:
        super().__init__(spec)
        parts = urlsplit(spec)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            self.address = int(q.get("address", "101"))
            baud = int(q.get("baud", "9600"))
            self.reader_no = int(q.get("reader", "0"))
            self.ack_timeout_s = float(q.get("timeout", "3"))
        except ValueError:
            raise DoorSpecError("osdp: address, baud, reader and timeout must be numbers") from None
        if not 0 <= self.address <= 126:
            raise DoorSpecError("osdp: the reader address must be 0..126")
        if baud not in _BAUDS:
            raise DoorSpecError(f"osdp: baud must be one of {sorted(_BAUDS)}")
        self.format = q.get("format", "raw")
        if self.format not in FORMATS:
            raise DoorSpecError(f"osdp: format must be one of {', '.join(FORMATS)}")
        scbk = self._scbk(q)
        try:
            import osdp
        except ImportError as exc:
            raise DoorSpecError(f"osdp needs the libosdp package: {exc}") from None
        if channel is None:
            channel = self._open_channel(parts, baud)
        self.channel = channel
        info = osdp.PDInfo(
            self.address,
            channel,
            scbk=scbk,
            name=f"facegate-{self.address}",
            flags=[osdp.LibFlag.EnforceSecure],  # never fall back to plain text
        )
        caps = osdp.PDCapabilities(
            [
                (osdp.Capability.CardDataFormat, 1, 1),
                (osdp.Capability.CommunicationSecurity, 1, 1),
            ]
        )
        self._osdp = osdp
        self._done = threading.Event()
        self._status: int | None = None
        self._lock = threading.Lock()
        self.pd = osdp.PeripheralDevice(
            info,
            caps,
            log_level=osdp.LogLevel.Error,
            event_completion_handler=self._completed,
        )
        self.pd.start()

    @staticmethod
    def _scbk(q: dict[str, str]) -> bytes:
        raw = q.get("scbk")
        if raw is None and "scbk_file" in q:
            try:
                raw = Path(q["scbk_file"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise DoorSpecError(f"osdp: cannot read scbk_file: {exc.strerror}") from None
        if raw is None:
            raise DoorSpecError(
                "osdp: Secure Channel is required; give the panel's key for this reader as "
                "scbk=<32 hex digits> or scbk_file=PATH"
            )
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            key = b""
        if len(key) != 16:
            raise DoorSpecError("osdp: scbk must be 16 bytes written as 32 hex digits")
        return key

    @staticmethod
    def _open_channel(parts: Any, baud: int) -> Any:
        if parts.hostname and parts.port:
            try:
                sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            except OSError as exc:
                raise DoorError(
                    f"cannot reach the OSDP line at {parts.hostname}:{parts.port}: {exc}"
                ) from None
            return socket_channel(sock)
        if parts.path:
            return serial_channel(parts.path, baud)
        raise DoorSpecError("osdp: give a serial device (osdp:///dev/ttyUSB0) or host:port")

    def _completed(self, event: dict, status: int) -> None:
        self._status = status
        self._done.set()

    @property
    def ready(self) -> bool:
        """The panel polls this reader over an established Secure Channel."""
        return bool(self.pd.is_online() and self.pd.is_sc_active())

    def open(self, command: DoorCommand) -> None:
        if not command.card_number:
            raise DoorError(
                "osdp: the person has no card valid at this access point; the panel can "
                "only be told a card number"
            )
        data, length = card_bits(command.card_number, self.format)
        if not self.ready:
            raise DoorError("osdp: the panel is not polling this reader over Secure Channel")
        fmt = self._osdp.CardFormat.Unspecified
        if self.format.startswith("wiegand"):
            fmt = self._osdp.CardFormat.Wiegand
        event = {
            "event": self._osdp.Event.CardRead,
            "reader_no": self.reader_no,
            "direction": 0,
            "format": fmt,
            "length": length,
            "data": data,
        }
        with self._lock:  # one card read in flight: its completion is ours
            self._done.clear()
            self._status = None
            if self.pd.submit_event(event) is False:
                raise DoorError("osdp: the reader's event queue refused the card read")
            if not self._done.wait(self.ack_timeout_s):
                raise DoorError("osdp: the panel did not take the card read in time")
            if self._status != self._osdp.CompletionStatus.Ok:
                raise DoorError(f"osdp: the card read was not delivered (status {self._status})")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pd.stop()
        close = getattr(self.channel, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def describe(self) -> str:
        parts = urlsplit(self.spec)
        return f"osdp://{parts.netloc}{parts.path}?address={self.address}"
