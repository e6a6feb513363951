"""The LVS-DR director pair demo, narrated: run inside the User-Mode-Linux guest by
`make demo` (director/demo.py: `tests/kernel/uml.py --run tests/kernel/demo_pair.py`).

Our daemon on both directors, nginx real servers, a client sending requests to the
VIP; a real server stopped and started, director A killed with kill -9 and started
again. Every step prints what it measured; the exit status is 0 only if every step did
what it says (the same checks tests/kernel/test_pair.py asserts).
"""

from __future__ import annotations

import sys
import time

from pair_lab import SITE, ScenarioError, pair_scenario, verdicts


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text}")


def main() -> int:
    started = time.monotonic()
    say("lvs-director demo: an LVS-DR director pair in a User-Mode-Linux guest with the "
        "kernel's ip_vs")
    say("  network namespaces: client 198.51.100.10; dirA .2 and dirB .3 (front LAN "
        "198.51.100.0/24, sync LAN 192.0.2.0/24); real servers dr1 .21, dr2 .22, sorry "
        "server dr3 .23")
    failure: str | None = None
    with pair_scenario(say) as pair:
        timing = pair.report.timing
        say(f"  configured: a dead real server is out within {timing.check_bound:.1f} s; "
            f"dirB takes over {timing.master_down:.2f} s after dirA's last advert; "
            f"dirA {'preempts' if timing.preempt else 'does not preempt'} on its return")
        try:
            heading("1. both directors start; the client sends requests to the VIP")
            pair.start_directors()
            heading("2. traffic is balanced across the real servers")
            pair.balance()
            heading(f"3. a real server fails: nginx on {SITE[0]} stops")
            pair.stop_real_server(SITE[0])
            heading(f"4. {SITE[0]} comes back")
            pair.restart_real_server(SITE[0])
            heading("5. director A dies: kill -9 of its daemon")
            pair.open_keepalive()
            pair.kill_director("dirA", "dirB")
            heading("6. director A returns")
            pair.return_director("dirA", "dirB")
        except ScenarioError as error:
            failure = str(error)
            say(f"\nSTEP FAILED: {failure}")
        pair.finish()
        results = verdicts(pair)
        heading("what was promised, and what happened")
        for verdict in results.values():
            say(f"  {'ok    ' if verdict.ok else 'FAILED'} {verdict.text}")
        ok = failure is None and all(v.ok for v in results.values())
        if not ok:
            for name, daemon in pair.daemons.items():
                say(f"\n--- {name}'s daemon log (last lines)")
                say("\n".join(daemon.output().splitlines()[-40:]))
    say(f"\ncleaned up (daemons, nginx, namespaces); the demo took "
        f"{time.monotonic() - started:.0f} s: {'every step did what it says' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
