"""systemd's readiness protocol (sd_notify(3)) without a dependency.

`Notifier.from_environment()` reads ``$NOTIFY_SOCKET`` (a path, or an abstract socket
name starting with '@'); without it every call does nothing, so the daemon runs the
same outside systemd. Each call sends one datagram of ``KEY=VALUE`` lines:

- ``ready()``: READY=1 (Type=notify: the unit is started);
- ``reloading()``: RELOADING=1 and MONOTONIC_USEC (systemd >= 253 wants the time to tell
  this reload from an earlier one); a ``ready()`` ends the reload;
- ``stopping()``: STOPPING=1;
- ``status(text)``: STATUS=text (what ``systemctl status`` shows).

A failing send is reported once through `on_error` and never raised: readiness must
not take the daemon down.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def socket_address(name: str) -> str | bytes:
    """The address to send to: abstract names ('@x') become b'\\0x'."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def message(**fields: object) -> bytes:
    """``KEY=VALUE`` lines; a value never spans lines (systemd reads one per line)."""
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\n", " ")
        lines.append(f"{key}={text}")
    return ("\n".join(lines) + "\n").encode()


class Notifier:
    def __init__(self, address: str | None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.address = address or None
        self._on_error = on_error
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         on_error: Callable[[str], None] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get(NOTIFY_SOCKET), on_error)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send the fields; whether they went out (False without NOTIFY_SOCKET)."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message(**fields), socket_address(self.address))
        except OSError as error:
            if not self._failed and self._on_error is not None:
                self._on_error(f"sd_notify to {self.address}: {error.strerror or error}")
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **_status(status))

    def reloading(self, status: str | None = None) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=usec, **_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **_status(status))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)


def _status(text: str | None) -> dict[str, str]:
    return {} if text is None else {"STATUS": text}
