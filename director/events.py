"""One structured log line per state change, for log shippers and people alike.

Every line goes to the ``director.events`` logger at INFO, in logfmt:
``event=real_server_down virtual_server=[192.0.2.10]:TCP:80 address=198.51.100.11
port=80 reason="TCP_CHECK connection refused"``. Keys are written as given, in order;
a value with a blank, a quote, an ``=`` or nothing at all is quoted (``"`` and ``\\``
escaped, line breaks as ``\\n``), None is left out, booleans are ``true``/``false``.

The events (the fields each carries are in the calls):
``real_server_up``, ``real_server_down``, ``quorum_up``, ``quorum_down``,
``sorry_server_in``, ``sorry_server_out`` (checkers child); ``vrrp_transition``
(VRRP child: an instance or a sync group changed state); ``reload_ok``,
``reload_refused`` (both children); ``child_exit`` (the supervisor).
"""

from __future__ import annotations

import logging
from typing import Any

LOGGER_NAME = "director.events"
log = logging.getLogger(LOGGER_NAME)

_NEEDS_QUOTES = frozenset(' "=\\\t\n\r')


def format_value(value: Any) -> str:
    """A logfmt value: bare when it can be, else quoted."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = str(round(value, 6)) if isinstance(value, float) else str(value)
    if text and not _NEEDS_QUOTES.intersection(text):
        return text
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def format_line(event: str, **fields: Any) -> str:
    """``event=<event> key=value ...``; fields whose value is None are left out."""
    parts = [f"event={format_value(event)}"]
    parts.extend(f"{key}={format_value(value)}" for key, value in fields.items()
                 if value is not None)
    return " ".join(parts)


def emit(event: str, **fields: Any) -> None:
    """Log one event line (see the module docstring)."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", format_line(event, **fields))
