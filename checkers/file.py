"""FILE_CHECK: the number in a global ``track_file``, judged by keepalived 2.2.7's rules.

Reading (keepalived's process_track_file): the first 127 bytes of the file, read as C's
``strtol(text, NULL, 0)`` reads them: leading white space, a sign, then decimal, ``0x``
hex or ``0`` octal digits, up to the first character that is not one. A file that is
missing, cannot be read, is empty or starts with no number reads as 0. A number below
-2147483648 or above 2147483648 is one keepalived ignores (it keeps the last value);
a probe has no last value, so here it is a failure saying so.

Judging, with the checker's ``weight`` and ``reverse`` (when the FILE_CHECK sets no
weight: the track_file's own weight and reverse):
- weight 0: the value 0 is OK and any other value a failure (``reverse``: the other
  way round);
- otherwise value x weight (negated with ``reverse``), limited to the 32-bit range,
  is added to the real server's weight; if that is -2147483648 or less the checker is
  failed (keepalived's IPVS_WEIGHT_FAULT).

That amount is an *increment*: keepalived adds it to the real server's configured
weight, so it is `ProbeResult.weight_delta`, not `ProbeResult.weight` (which *sets* a
weight, as MISC_CHECK's misc_dynamic does). ``dynamic`` (keepalived.conf(5)) changes
nothing here: keepalived 2.2.7 rejects it as an unknown keyword and always adds the
weighted value.
"""

from __future__ import annotations

import os
import time

from checkers.probe import ProbeContext, ProbeResult
from checkers.spec import FileCheck

READ_SIZE = 127        # keepalived reads into a 128-byte buffer
INT32_MIN = -(2**31)   # also keepalived's IPVS_WEIGHT_FAULT
INT32_MAX = 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def strtol(text: bytes) -> tuple[int, bool, bool]:
    """C's strtol(text, NULL, 0) on a 64-bit host: (value, found digits, overflowed).
    An overflow gives LONG_MIN / LONG_MAX as C does."""
    i, n = 0, len(text)
    while i < n and text[i] in b" \t\n\v\f\r":
        i += 1
    negative = False
    if i < n and text[i] in b"+-":
        negative = text[i] == ord("-")
        i += 1
    base = 10
    if text[i:i + 2].lower() == b"0x" and i + 2 < n and _digit(text[i + 2], 16) is not None:
        base, i = 16, i + 2
    elif text[i:i + 1] == b"0":
        base = 8
    start = i
    value = 0
    while i < n and (d := _digit(text[i], base)) is not None:
        value = value * base + d
        i += 1
    if i == start:
        return 0, False, False
    value = -value if negative else value
    if value > _LONG_MAX:
        return _LONG_MAX, True, True
    if value < _LONG_MIN:
        return _LONG_MIN, True, True
    return value, True, False


def _digit(byte: int, base: int) -> int | None:
    char = chr(byte).lower()
    value = int(char, 36) if char.isascii() and char.isalnum() else None
    return value if value is not None and value < base else None


def judge(value: int, weight: int, reverse: bool) -> tuple[bool, int | None]:
    """keepalived's verdict on a value read: (ok, amount added to the weight)."""
    if weight == 0:
        return (value == 0) != reverse, None
    amount = value * weight * (-1 if reverse else 1)
    amount = max(INT32_MIN, min(INT32_MAX, amount))
    if amount <= INT32_MIN:
        return False, None
    return True, amount


def read_value(path: str) -> tuple[int | None, str]:
    """The value keepalived reads from `path` (None: out of range, ignored by keepalived)
    and how it was read, for the reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0, "is missing: read as 0"
    except OSError as exc:
        return 0, f"cannot be opened ({os.strerror(exc.errno or 0)}): read as 0"
    try:
        data = os.read(fd, READ_SIZE)
    except OSError as exc:
        return 0, f"cannot be read ({os.strerror(exc.errno or 0)}): read as 0"
    finally:
        os.close(fd)
    if not data:
        return 0, "is empty: read as 0"
    value, found, overflow = strtol(data)
    if not found:
        return 0, "holds no number: read as 0"
    if overflow or not INT32_MIN <= value <= INT32_MAX + 1:
        number = "a number beyond 64 bits" if overflow else str(value)
        return None, (f"holds {number}, outside {INT32_MIN}..{INT32_MAX + 1} "
                      "(keepalived ignores such a value)")
    return value, f"reads {value}"


async def probe_file(spec: FileCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    tracked = context.track_files.get(spec.track_file)
    if tracked is None:
        return ProbeResult(False, f"FILE_CHECK: track_file {spec.track_file!r} is not defined",
                           time.monotonic() - started)
    if spec.weight is None:
        weight, reverse = tracked.weight, tracked.reverse
    else:
        weight, reverse = spec.weight, spec.reverse
    value, how = read_value(tracked.path)
    subject = f"track_file {spec.track_file} ({tracked.path}) {how}"
    if value is None:
        return ProbeResult(False, subject, time.monotonic() - started)
    ok, amount = judge(value, weight, reverse)
    return ProbeResult(ok, f"{subject}; {_verdict(value, weight, reverse, ok, amount)}",
                       time.monotonic() - started, weight_delta=amount if ok else None)


def _verdict(value: int, weight: int, reverse: bool, ok: bool, amount: int | None) -> str:
    rule = f"weight {weight}{' reverse' if reverse else ''}"
    if weight == 0:
        if ok:
            return f"OK with {rule}"
        wanted = "non-zero" if reverse else "0"
        return f"a failure with {rule}, which wants {wanted}"
    if not ok:
        return f"{rule} gives {value * weight * (-1 if reverse else 1)}: a failure"
    return f"{rule} adds {amount} to the real server's weight"
