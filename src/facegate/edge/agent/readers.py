"""Card and QR readers at the same door: a keyboard-wedge reader types one line per read.

A USB card reader in keyboard mode types the card number and Enter; a QR scanner types the
code it read. The agent reads those lines from standard input (the reader's console) or from
a path (a serial port such as ``/dev/ttyUSB0`` or a FIFO). A line of the form
``<credential id>.<secret>`` is a facegate QR pass; anything else is a card number. The value
is never written to a log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import IO

from facegate.edge.agent.deciders import Credential

log = logging.getLogger("facegate.edge.agent")

MAX_LINE = 256


def parse_line(line: str) -> Credential | None:
    value = line.strip()
    if not value or len(value) > MAX_LINE:
        return None
    for prefix in ("qr:", "card:"):
        if value.lower().startswith(prefix):
            rest = value[len(prefix) :].strip()
            return Credential(prefix[:-1], rest) if rest else None
    cred_id, sep, secret = value.partition(".")
    if sep and cred_id and secret:
        return Credential("qr", value)
    return Credential("card", value)


class LineReader:
    """Reads credential lines in a thread and hands each to ``on_credential``."""

    def __init__(self, stream: IO[str], on_credential: Callable[[Credential], None]) -> None:
        self.stream = stream
        self.on_credential = on_credential
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)

    parse = staticmethod(parse_line)

    def start(self) -> LineReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        for line in self.stream:
            cred = parse_line(line)
            if cred is None:
                log.warning("reader: ignored an empty or over-long line")
                continue
            log.info("reader: %s presented", cred.kind)
            self.on_credential(cred)
