"""BFD_CHECK says it cannot work instead of pretending."""

from __future__ import annotations

from checkers.probe import ProbeContext, run_probe
from checkers.spec import BfdCheck


async def test_bfd_check_fails_saying_bfd_is_not_implemented():
    result = await run_probe(BfdCheck(name="bfd_peer"), ProbeContext())
    assert (result.ok, result.reason, result.weight) == (
        False, "BFD_CHECK needs a bfd_instance session; BFD is not implemented", None)
