"""``osdp://``: facegate as an OSDP reader on an access-control panel, Secure Channel on.

The panel is LibOSDP's own control panel, on the master side of a pty pair; facegate's reader
opens the slave side as a serial line (as it would /dev/ttyUSB0). On an allow the panel
receives the enrolled person's card number; on a deny it receives nothing."""

from __future__ import annotations

import os
import secrets
import time

import osdp
import pytest
from events_support import gate_server

from facegate.domain.credentials import card_for
from facegate.edge.doors import DoorCommand, DoorError, DoorSpecError, door_from_spec
from facegate.edge.doors.osdp import card_bits, decode_card
from facegate.store.db import Store

ADDRESS = 101


class MasterChannel(osdp.Channel):
    """The panel's end of the pty."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        os.set_blocking(fd, False)

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, buf)
        except (BlockingIOError, OSError):
            return 0

    def flush(self) -> None:
        pass


@pytest.fixture
def line():
    """(panel, reader spec, key): a pty pair, the reader's spec naming the slave side."""
    master, slave = os.openpty()
    key = secrets.token_bytes(16)
    yield master, os.ttyname(slave), key
    os.close(slave)
    os.close(master)


def start_panel(master: int, key: bytes):
    cp = osdp.ControlPanel(
        [
            osdp.PDInfo(
                ADDRESS,
                MasterChannel(master),
                scbk=key,
                name="panel",
                flags=[osdp.LibFlag.EnforceSecure],
            )
        ],
        log_level=osdp.LogLevel.Error,
    )
    cp.start()
    return cp


def wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("fmt", ["raw", "wiegand26"])
def test_panel_gets_the_card_number_on_allow_and_nothing_on_deny(tmp_path, line, fmt):
    master, path, key = line
    with gate_server(tmp_path, []) as gate:
        store = Store(gate.settings.database_url)
        with store.session() as s:
            card = card_for(s, gate.person, gate.ap)
        store.dispose()
        assert card == gate.card
        door = door_from_spec(f"osdp://{path}?address={ADDRESS}&scbk={key.hex()}&format={fmt}")
        cp = start_panel(master, key)
        try:
            # Both ends agree the Secure Channel is up (the reader knows a moment earlier).
            assert wait(lambda: door.ready and cp.is_sc_active(ADDRESS)), "no Secure Channel"
            decisions = []
            for presented in ("NOT-A-CARD", gate.card):  # a deny, then an allow
                result = gate.decide(presented)
                decisions.append(result["decision"])
                if result["decision"] == "allow":  # what the agent does: obey the answer
                    door.open(DoorCommand(gate.ap, result["request_id"], result["subject"], card))
            assert decisions == ["deny", "allow"]
            event = cp.get_event(ADDRESS, timeout=10)
            assert event is not None and event["event"] == osdp.Event.CardRead
            assert decode_card(event["data"], event["length"], fmt) == card
            assert cp.get_event(ADDRESS, timeout=1) is None  # the deny sent nothing
            assert "scbk" not in door.describe() and key.hex() not in door.describe()
        finally:
            door.close()
            cp.stop()


def test_reader_refuses_to_run_without_secure_channel(line):
    _, path, _ = line
    with pytest.raises(DoorSpecError, match="Secure Channel is required"):
        door_from_spec(f"osdp://{path}?address={ADDRESS}")


def test_open_without_a_panel_fails_loudly(line):
    _, path, key = line
    door = door_from_spec(f"osdp://{path}?address={ADDRESS}&scbk={key.hex()}")
    try:
        with pytest.raises(DoorError, match="not polling"):
            door.open(DoorCommand("door-1", "req-1", None, "10001234"))
        with pytest.raises(DoorError, match="no card"):
            door.open(DoorCommand("door-1", "req-1", None, None))
    finally:
        door.close()


def test_wiegand_encoding_round_trips_with_parity():
    data, bits = card_bits("12345678", "wiegand26")
    assert bits == 26 and len(data) == 4
    assert decode_card(data, bits, "wiegand26") == "12345678"
    frame = int.from_bytes(data, "big") >> 6
    even, payload, odd = frame >> 25, (frame >> 1) & 0xFFFFFF, frame & 1
    assert (even + bin(payload >> 12).count("1")) % 2 == 0
    assert (odd + bin(payload & 0xFFF).count("1")) % 2 == 1
    with pytest.raises(DoorError):
        card_bits(str(1 << 24), "wiegand26")


def test_reader_over_tcp_to_an_rs485_server():
    """``osdp://host:port``: the same reader over a TCP link (an RS-485-to-Ethernet server);
    here LibOSDP's panel sits on the accepted connection."""
    import socket

    from facegate.edge.doors.osdp import socket_channel

    key = secrets.token_bytes(16)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    door = door_from_spec(f"osdp://127.0.0.1:{port}?address={ADDRESS}&scbk={key.hex()}")
    conn, _ = server.accept()
    cp = osdp.ControlPanel(
        [osdp.PDInfo(ADDRESS, socket_channel(conn), scbk=key, flags=[osdp.LibFlag.EnforceSecure])],
        log_level=osdp.LogLevel.Error,
    )
    cp.start()
    try:
        assert wait(lambda: door.ready and cp.is_sc_active(ADDRESS)), "no Secure Channel"
        door.open(DoorCommand("door-1", "req-1", "p-1", "4242"))
        event = cp.get_event(ADDRESS, timeout=10)
        assert event is not None and decode_card(event["data"], event["length"], "raw") == "4242"
    finally:
        door.close()
        cp.stop()
        server.close()
