"""`make demo`: the LVS-DR director pair, end to end, in a User-Mode-Linux guest.

On the host: checks the example configurations of the pair (conf/director-a.conf and
director-b.yaml, and their other-format twins), then boots one guest with the
kernel's ip_vs (tests/kernel/uml.py: fetches Debian's user-mode-linux once, loads the
modules) and runs the narrated scenario tests/kernel/demo_pair.py in it: our daemon on
both directors, nginx real servers, a client; a real server stopped and started,
director A killed and started again. Exit status: the scenario's (0: every step did
what it says), or uml.py's for a guest that could not run.

    python -m director.demo [--uml-timeout SECONDS]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from director.config.errors import ConfigError
from director.config.load import load_config

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
UML = REPO / "tests" / "kernel" / "uml.py"
SCENARIO = "tests/kernel/demo_pair.py"
GUEST_TIMEOUT = 600  # seconds: the scenario takes about one minute


def say(text: str = "") -> None:
    print(text, flush=True)


def check_configs() -> bool:
    """Each example loads without a warning and its two forms are one configuration."""
    ok = True
    for director in ("a", "b"):
        loaded = {}
        for form in ("conf", "yaml"):
            name = f"director-{director}.{form}"
            started = time.perf_counter()
            try:
                loaded[form], warnings = load_config(str(CONF / name))
            except ConfigError as error:
                say(f"  {name}: NOT valid")
                for problem in error.problems:
                    say(f"    {problem}")
                ok = False
                continue
            took = (time.perf_counter() - started) * 1000
            (instance,) = loaded[form].vrrp.instances
            say(f"  director check-config -f conf/{name}: valid, {len(warnings)} warning(s), "
                f"{took:.0f} ms (VRRP {instance.name} VRID {instance.virtual_router_id}, "
                f"state {instance.state}, priority {instance.priority})")
            ok = ok and not warnings
        if len(loaded) == 2:
            same = loaded["conf"] == loaded["yaml"]
            say(f"  director-{director}.conf and director-{director}.yaml are the same "
                f"configuration: {same}")
            ok = ok and same
    return ok


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    say("lvs-director demo: an LVS-DR director pair (conf/director-a.*, conf/director-b.*)")
    if not check_configs():
        say("the example configurations are broken: no demo")
        return 1
    say(f"\nbooting a User-Mode-Linux guest with the kernel's ip_vs for the pair "
        f"({UML.relative_to(REPO)} --run {SCENARIO})\n")
    timeout = ["--uml-timeout", str(GUEST_TIMEOUT)]
    if any(a.startswith("--uml-timeout") for a in args):
        timeout = []
    try:
        return subprocess.run([sys.executable, str(UML), *timeout, *args, "--run", SCENARIO],
                              cwd=REPO).returncode
    except KeyboardInterrupt:  # uml.py stops its guest on the same SIGINT
        return 130


if __name__ == "__main__":
    sys.exit(main())
