"""FILE_CHECK: reading a track_file as keepalived does, and judging its value."""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.file import judge, probe_file, read_value, strtol
from checkers.probe import ProbeContext, TrackedFile, run_probe
from checkers.spec import FileCheck

_libc = ctypes.CDLL(None, use_errno=True)
_libc.strtol.restype = ctypes.c_long
_libc.strtol.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]


def c_strtol(text: bytes) -> tuple[int, bool, bool]:
    """The C library's strtol(text, &end, 0): value, digits found, ERANGE."""
    buffer = ctypes.create_string_buffer(text)
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = _libc.strtol(buffer, ctypes.byref(end), 0)
    err = ctypes.get_errno()
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buffer)
    return value, consumed > 0, err == 34  # ERANGE


@pytest.mark.parametrize("text, value", [
    (b"5", 5), (b"  -12\n", -12), (b"+7", 7), (b"0x1f", 31), (b"0X1F", 31), (b"017", 15),
    (b"08", 0), (b"0x", 0), (b"0xg", 0), (b"12abc", 12), (b"\t\n 42 43", 42), (b"-0x10", -16),
])
def test_strtol_reads_as_c_does(text, value):
    assert strtol(text)[0] == value
    assert strtol(text) == c_strtol(text)


@pytest.mark.parametrize("text", [b"", b"abc", b"-", b" +", b"x12"])
def test_strtol_without_digits(text):
    assert strtol(text) == (0, False, False) == c_strtol(text)


def test_strtol_overflow_saturates_like_c():
    assert strtol(b"99999999999999999999") == c_strtol(b"99999999999999999999")
    assert strtol(b"-99999999999999999999")[0] == -(2**63)


@given(st.text(alphabet=" \t\n+-0123456789abcdefxXg", max_size=30))
def test_strtol_matches_the_c_library(text):
    data = text.encode()
    assert strtol(data) == c_strtol(data)


@pytest.mark.parametrize("value, weight, reverse, verdict", [
    (0, 0, False, (True, None)),
    (1, 0, False, (False, None)),
    (-3, 0, False, (False, None)),
    (0, 0, True, (False, None)),
    (4, 0, True, (True, None)),
    (5, 3, False, (True, 15)),
    (5, 3, True, (True, -15)),
    (-5, 3, False, (True, -15)),
    (0, 3, False, (True, 0)),
    (2**31, 1, False, (True, 2**31 - 1)),       # limited to the 32-bit range
    (-(2**31), 1, False, (False, None)),        # IPVS_WEIGHT_FAULT
    (-(10**9), 3, False, (False, None)),        # below it
    (10**9, 3, True, (False, None)),            # reversed below it
])
def test_judge(value, weight, reverse, verdict):
    assert judge(value, weight, reverse) == verdict


def write(tmp_path: Path, text: bytes | str, name: str = "tf") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def test_read_value(tmp_path):
    assert read_value(write(tmp_path, "12\n")) == (12, "reads 12")
    assert read_value(write(tmp_path, "")) == (0, "is empty: read as 0")
    assert read_value(write(tmp_path, "up\n")) == (0, "holds no number: read as 0")
    assert read_value(str(tmp_path / "nothing")) == (0, "is missing: read as 0")
    assert read_value(str(tmp_path)) == (0, "cannot be read (Is a directory): read as 0")
    assert read_value(write(tmp_path, "2147483648")) == (2147483648, "reads 2147483648")
    assert read_value(write(tmp_path, "2147483649")) == (
        None, "holds 2147483649, outside -2147483648..2147483648 "
              "(keepalived ignores such a value)")
    assert read_value(write(tmp_path, "-99999999999999999999")) == (
        None, "holds a number beyond 64 bits, outside -2147483648..2147483648 "
              "(keepalived ignores such a value)")


def test_read_value_reads_only_the_first_127_bytes(tmp_path):
    # keepalived reads 127 bytes: digits past them are not part of the number.
    assert read_value(write(tmp_path, " " * 125 + "1234"))[0] == 12


def test_read_value_does_not_block_on_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert read_value(str(fifo)) == (0, "is empty: read as 0")


def context(path: str, weight: int = 1) -> ProbeContext:
    return ProbeContext(track_files={"TF": TrackedFile(path=path, weight=weight)})


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_weighted_value_adds_to_the_weight(tmp_path):
    path = write(tmp_path, "5\n")
    before = fd_count()
    result = await probe_file(FileCheck(track_file="TF"), context(path, weight=3))
    assert fd_count() == before
    # an increment of the configured weight, not a weight to set
    assert (result.ok, result.weight, result.weight_delta) == (True, None, 15)
    assert result.reason == f"track_file TF ({path}) reads 5; weight 3 adds 15 to the real " \
                            "server's weight"


async def test_checker_weight_and_reverse_override_the_track_file_s(tmp_path):
    path = write(tmp_path, "5")
    result = await probe_file(FileCheck(track_file="TF", weight=2, reverse=True),
                              context(path, weight=3))
    assert result.ok
    assert result.reason.endswith("; weight 2 reverse adds -10 to the real server's weight")
    assert result.weight_delta == -10


async def test_weight_zero_fails_on_non_zero(tmp_path):
    path = write(tmp_path, "1")
    result = await probe_file(FileCheck(track_file="TF", weight=0), context(path))
    assert (result.ok, result.weight) == (False, None)
    assert result.reason == f"track_file TF ({path}) reads 1; a failure with weight 0, " \
                            "which wants 0"
    result = await probe_file(FileCheck(track_file="TF"), context(write(tmp_path, "0"), 0))
    assert (result.ok, result.reason.endswith("reads 0; OK with weight 0")) == (True, True)


async def test_weight_zero_reverse_fails_on_zero(tmp_path):
    path = str(tmp_path / "absent")
    result = await probe_file(FileCheck(track_file="TF", weight=0, reverse=True),
                              context(path))
    assert not result.ok
    assert result.reason == f"track_file TF ({path}) is missing: read as 0; a failure with " \
                            "weight 0 reverse, which wants non-zero"


async def test_missing_file_reads_as_zero(tmp_path):
    path = str(tmp_path / "absent")
    result = await probe_file(FileCheck(track_file="TF"), context(path, 4))
    assert result.ok
    assert result.reason == f"track_file TF ({path}) is missing: read as 0; weight 4 adds 0 " \
                            "to the real server's weight"


async def test_value_at_the_fault_weight_fails(tmp_path):
    path = write(tmp_path, "-1000000000")
    result = await probe_file(FileCheck(track_file="TF"), context(path, 3))
    assert (result.ok, result.weight) == (False, None)
    assert result.reason == f"track_file TF ({path}) reads -1000000000; weight 3 gives " \
                            "-3000000000: a failure"


async def test_out_of_range_value_fails(tmp_path):
    path = write(tmp_path, "0x100000000")
    result = await probe_file(FileCheck(track_file="TF"), context(path))
    assert not result.ok
    assert result.reason == f"track_file TF ({path}) holds 4294967296, outside " \
                            "-2147483648..2147483648 (keepalived ignores such a value)"


async def test_file_changes_are_seen_at_the_next_probe(tmp_path):
    path = write(tmp_path, "0")
    spec, ctx = FileCheck(track_file="TF", weight=0), context(path)
    assert (await probe_file(spec, ctx)).ok
    write(tmp_path, "1")
    assert not (await probe_file(spec, ctx)).ok
    os.unlink(path)
    assert (await probe_file(spec, ctx)).ok


async def test_undefined_track_file():
    result = await run_probe(FileCheck(track_file="nope"), ProbeContext())
    assert (result.ok, result.reason) == (False, "FILE_CHECK: track_file 'nope' is not defined")


async def test_the_track_file_s_reverse_flag_applies_when_the_checker_sets_no_weight(tmp_path):
    path = tmp_path / "value"
    path.write_text("4\n")
    tracked = TrackedFile(path=str(path), weight=2, reverse=True)
    result = await probe_file(FileCheck(track_file="TF"),
                              ProbeContext(track_files={"TF": tracked}))
    assert (result.ok, result.weight_delta) == (True, -8)
