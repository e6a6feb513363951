"""BFD_CHECK: not implemented, and honest about it.

In keepalived a BFD_CHECK follows the state of a ``bfd_instance`` session run by
keepalived's BFD process. lvs-director has no BFD process and no bfd_instance
sessions, so a BFD_CHECK can never learn whether its peer is up: every probe fails
with a reason that says exactly that, and a real server that relies on one stays
down (or, with ``alpha`` off, goes down at its first probe) instead of being
reported up on nothing.
"""

from __future__ import annotations

from checkers.probe import ProbeContext, ProbeResult
from checkers.spec import BfdCheck

NOT_IMPLEMENTED = "BFD_CHECK needs a bfd_instance session; BFD is not implemented"


async def probe_bfd(spec: BfdCheck, context: ProbeContext) -> ProbeResult:
    return ProbeResult(False, NOT_IMPLEMENTED, 0.0)
