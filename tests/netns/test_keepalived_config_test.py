"""Our keepalived.conf loader against `keepalived -t` (config test mode) on the same file.

How `keepalived -t` behaves (2.2.7, measured here):
- It parses and validates the whole file, LVS part included, without touching the
  kernel: it needs no ip_vs module, so it judges LVS configs on this host too (the
  kernel's own checks, e.g. whether a scheduler module exists, are not part of it).
- It does check that interfaces named in the file exist. That is a fact about a
  machine, not about the file, so each file is tested in a namespace of its own where
  the interfaces keepalived asks for are made (veth pairs) before the verdict counts.
- Exit status: 0 when it has nothing to say; 5 when it reported problems in the file
  (also for mere unknown keywords, deprecations and advice, after which keepalived
  would still run); 6 for script-security trouble and, with ``-e``, missing include
  files. (keepalived(8) lists these as 3/4/5: its table is off by one against what
  2.2.7 returns.)

So the exit code alone cannot say "rejected". Each message keepalived prints is
classified (table below) into what it means for a user:
- REJECTED: a value or the file's structure is wrong and keepalived drops or replaces
  it. Our loader must report an *error* at the same line (any error, with a location,
  when keepalived names no line). When keepalived names the line of every rejection,
  ours may report errors at those lines only: no error where keepalived takes a line.
- FLAGGED: keepalived loads the rest but says something is off at that line (an unknown
  keyword, a missing include). Ours must report a problem (warning or error) there.
- ADVICE: deprecations, semantic notes, missing interfaces: nothing required of ours.
When keepalived rejects nothing, ours must load with no errors. A message that matches
no row of the table fails the test, so nothing keepalived says is silently ignored, and
every row must be matched by some case, so none is dead or shadowed.

The cases: Debian's samples, small broken configs (CASES), and the files in
data/keepalived-t/, each of which says at its top what it exercises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pytest

from director.config.errors import ConfigError, Problem, Severity
from director.config.keepalived import load_keepalived
from tests.netns.keepalived_peer import KEEPALIVED, config_test
from tests.netns.lab import Lab

SAMPLES = Path("/usr/share/doc/keepalived/samples")


class Verdict(Enum):
    REJECTED = "rejected"
    FLAGGED = "flagged"
    ADVICE = "advice"


# keepalived 2.2.7's messages, by what they mean for the file. First match wins, so a
# row sits above any more general row that would also match its messages (REJECTED
# "No VIP specified; at least one is required" above ADVICE "No VIP specified").
MESSAGE_TABLE: tuple[tuple[Verdict, str], ...] = (
    # values keepalived refuses
    (Verdict.REJECTED, r"outside range|must be between"),
    (Verdict.REJECTED, r"not valid"),
    (Verdict.REJECTED, r"[Ii]nvalid"),
    (Verdict.REJECTED, r"not multicast"),
    (Verdict.REJECTED, r"unknown \[.*\] routing method"),
    # structure
    (Verdict.REJECTED, r"missing '\}'s or extra '\{'s"),
    (Verdict.REJECTED, r"Extra '\}' found"),
    # instances and groups keepalived drops or cuts down
    (Verdict.REJECTED, r"must be set"),
    (Verdict.REJECTED, r"Unknown interface!"),
    (Verdict.REJECTED, r"No VIP specified; at least one is required"),
    (Verdict.REJECTED, r"address family must match|MUST be of the same family"),
    (Verdict.REJECTED, r"both use VRID"),
    (Verdict.REJECTED, r"VMAC interface name already specified"),
    (Verdict.REJECTED, r"cannot exist in more than one sync group"),
    # routes and rules keepalived skips
    (Verdict.REJECTED, r"Route must have a destination|Cannot mix IPv4 and IPv6"
                       r"|inet6 specified for IPv4 route|unknown route keyword"),
    (Verdict.REJECTED, r"Unknown rule option|No action specified for rule"
                       r"|Cannot specify l3mdev with other|Routing table .* not found"),
    (Verdict.FLAGGED, r"Unknown keyword '"),
    (Verdict.FLAGGED, r"Unknown configuration entry .* for ip address"),
    (Verdict.FLAGGED, r"Config files missing"),
    (Verdict.ADVICE, r"deprecated|Please use"),
    (Verdict.ADVICE, r"not supported, using nftables instead"),
    (Verdict.ADVICE, r"probably not what you want|only 1 virtual router"),
    (Verdict.ADVICE, r"cannot track route .* with no interface"),
    (Verdict.ADVICE, r"protocol will be ignored|resetting protocol"),
    (Verdict.ADVICE, r"incompatible with|does not support authentication"
                     r"|[Ss]trict mode requires|with strict mode - clearing"),
    (Verdict.ADVICE, r"No VIP specified"),
    (Verdict.ADVICE, r"no scheduler set|no forwarding method set"),
    (Verdict.ADVICE, r"SECURITY VIOLATION"),
    # the script user must exist on the host that runs keepalived
    (Verdict.ADVICE, r"Error setting global script uid/gid"),
    (Verdict.ADVICE, r"No script set for vrrp_script"
                     r"|track (?:script|file|process|bfd) .* not found|track_group .* not found"),
    (Verdict.ADVICE, r"has no virtual router|no matching virtual router"),
    (Verdict.ADVICE, r"due to SYNC group"),
    (Verdict.ADVICE, r"(?:should|must) be link local"),
    (Verdict.ADVICE, r"State MASTER must match|advertisement interval"),
    (Verdict.ADVICE, r"unicast_ttl without unicast peers"),
    (Verdict.ADVICE, r"only valid with a vmac|requires vmac_xmit_base"),
    (Verdict.ADVICE, r"Truncating auth_pass"),
    (Verdict.ADVICE, r"doesn't exist|Non-existent interface"),
)

LINE_PREFIX = re.compile(r"^\((?:(?P<file>[^()]+?): )?Line (?P<line>\d+)\)\s*(?P<text>.*)$")
MISSING_INTERFACE = re.compile(r"interface (\S+) (?:for .*)?doesn't exist")


@dataclass(frozen=True)
class Message:
    file: str | None
    line: int | None
    text: str
    verdict: Verdict | None


def matching_row(text: str) -> int | None:
    """The index of the row of MESSAGE_TABLE that classifies TEXT: the first that matches."""
    for row, (_, pattern) in enumerate(MESSAGE_TABLE):
        if re.search(pattern, text):
            return row
    return None


def classify(text: str) -> Verdict | None:
    row = matching_row(text)
    return None if row is None else MESSAGE_TABLE[row][0]


def parse_messages(output: str, conf: Path) -> list[Message]:
    """keepalived's messages, once each (it parses the file once per process)."""
    seen: dict[tuple[int | None, str], Message] = {}
    for raw in output.splitlines():
        raw = raw.strip()
        if not raw:
            continue
        m = LINE_PREFIX.match(raw)
        if m:
            file = m["file"] or str(conf)
            key = (int(m["line"]), m["text"].strip())
            msg = Message(file, key[0], key[1], classify(key[1]))
        else:
            key = (None, raw)
            msg = Message(None, None, raw, classify(raw))
        seen.setdefault(key, msg)
    return list(seen.values())


@dataclass
class Reference:
    exit_code: int
    messages: list[Message]
    output: str

    def describe(self) -> str:
        return f"keepalived -t exit {self.exit_code}:\n{self.output}"


def reference_verdict(lab: Lab, conf: Path, *, config_id: str | None = None,
                      extra: tuple[str, ...] = ()) -> Reference:
    """`keepalived -t` on CONF in a namespace holding every interface it asks for."""
    ns = lab.add_namespace(f"kt{len(lab.namespaces)}")
    made: set[str] = set()
    for _ in range(4):
        rc, output = config_test(ns, conf, config_id=config_id, extra=extra)
        missing = set(MISSING_INTERFACE.findall(output)) - made
        if not missing:
            break
        for name in sorted(missing):
            lab.add_veth(ns, name)
        made |= missing
    return Reference(rc, parse_messages(output, conf), output)


def our_problems(conf: Path, *, config_id: str | None = None,
                 strict: bool = False) -> list[Problem]:
    try:
        _, problems = load_keepalived(str(conf), strict=strict, config_id=config_id)
    except ConfigError as exc:
        return list(exc.problems)
    return list(problems)


def origin_line(origin: str) -> tuple[str, int] | None:
    parts = origin.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def at_line(problems: list[Problem], file: str, line: int) -> list[Problem]:
    found = []
    for p in problems:
        where = origin_line(p.origin)
        if where and where[1] == line and same_file(where[0], file):
            found.append(p)
    return found


def render(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems) or "(no problems)"


def assert_agrees(ref: Reference, ours: list[Problem], *, strict: bool = False) -> None:
    """Our loader's problems agree with keepalived's verdict (see module docstring)."""
    unknown = [m.text for m in ref.messages if m.verdict is None]
    assert not unknown, (
        "keepalived said something the message table does not classify; add a row:\n"
        + "\n".join(unknown) + "\n" + ref.describe())
    errors = [p for p in ours
              if p.severity is Severity.ERROR or (strict and p.severity is Severity.WARNING)]
    rejected = [m for m in ref.messages if m.verdict is Verdict.REJECTED]
    context = f"\n--- ours ---\n{render(ours)}\n--- {ref.describe()}"
    if rejected:
        assert ref.exit_code != 0, "a REJECTED message with exit 0: the table is wrong" + context
        for m in rejected:
            if m.line is None:
                assert any(origin_line(p.origin) for p in errors), (
                    f"keepalived rejects ({m.text!r}); ours has no located error" + context)
            else:
                assert m.file is not None
                assert at_line(errors, m.file, m.line), (
                    f"keepalived rejects line {m.line} ({m.text!r}); "
                    f"ours has no error there" + context)
        if all(m.line is not None for m in rejected):
            refused = {(Path(m.file).resolve(), m.line) for m in rejected if m.file}
            beyond = [p for p in errors if (where := origin_line(p.origin))
                      and (Path(where[0]).resolve(), where[1]) not in refused]
            assert not beyond, (
                "ours reports errors on lines keepalived takes:\n" + render(beyond) + context)
    else:
        assert not errors, "keepalived accepts this file; ours reports errors" + context
    for m in ref.messages:
        if m.verdict is Verdict.FLAGGED and m.line is not None and m.file is not None:
            assert at_line(ours, m.file, m.line), (
                f"keepalived flags line {m.line} ({m.text!r}); ours says nothing there"
                + context)


# ---------------------------------------------------------------- Debian's samples


def sample_cases() -> list[pytest.param]:
    cases = []
    for path in sorted(SAMPLES.glob("keepalived.conf.*")):
        ids = sorted(set(re.findall(r"^@(\w+)", path.read_text(errors="replace"), re.M)))
        for config_id in ids or [None]:
            name = path.name.removeprefix("keepalived.conf.")
            cases.append(pytest.param(path, config_id,
                                      id=f"{name}@{config_id}" if config_id else name))
    return cases


@pytest.mark.skipif(not KEEPALIVED.exists(), reason="keepalived missing: `make test-netns` "
                    "installs Debian's keepalived")
@pytest.mark.parametrize(("sample", "config_id"), sample_cases() or [
    pytest.param(None, None, marks=pytest.mark.skip(reason=f"no samples in {SAMPLES}: "
                                                    "`make test-netns` installs keepalived"))])
def test_debian_samples_agree_with_keepalived(lab: Lab, sample: Path, config_id: str | None):
    ref = reference_verdict(lab, sample, config_id=config_id)
    assert_agrees(ref, our_problems(sample, config_id=config_id))


# ---------------------------------------------------------------- broken configs

VRRP_OK = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.10/24
    }
}
"""

LVS_OK = """\
virtual_server 192.0.2.10 80 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.0.2.21 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
"""

CASES: dict[str, tuple[str, bool]] = {
    # name: (text, does keepalived reject something in it?)
    "good_vrrp": (VRRP_OK, False),
    "good_lvs": (LVS_OK, False),
    "vrid_300": (VRRP_OK.replace("virtual_router_id 51", "virtual_router_id 300"), True),
    "priority_and_advert_int": (
        VRRP_OK.replace("priority 100", "priority 300\n    advert_int abc"), True),
    "bad_vip": (VRRP_OK.replace("192.0.2.10/24", "192.0.2.300/24"), True),
    "unknown_scheduler": (LVS_OK.replace("lb_algo rr", "lb_algo bogus"), True),
    "unknown_lb_kind": (LVS_OK.replace("lb_kind DR", "lb_kind XYZ"), True),
    "missing_close_brace": (VRRP_OK.replace("    }\n}", "}"), True),
    "extra_close_brace": (VRRP_OK + "}\n", True),
    "unknown_keyword": (VRRP_OK.replace("priority 100", "priority 100\n    frobnicate yes"),
                        False),
    "missing_include": ("include /nonexistent/lvsd-test/missing.conf\n" + VRRP_OK, False),
}


@pytest.mark.skipif(not KEEPALIVED.exists(), reason="keepalived missing: `make test-netns` "
                    "installs Debian's keepalived")
@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_configs_agree_with_keepalived(lab: Lab, tmp_path: Path, case: str):
    text, rejects = CASES[case]
    conf = tmp_path / f"{case}.conf"
    conf.write_text(text)
    ref = reference_verdict(lab, conf)
    # The case's label is checked against keepalived itself, so it cannot drift.
    assert any(m.verdict is Verdict.REJECTED for m in ref.messages) == rejects, ref.describe()
    assert_agrees(ref, our_problems(conf))


# ---------------------------------------------------------------- files in data/


DATA = Path(__file__).resolve().parent / "data" / "keepalived-t"

# file: does keepalived reject something in it? Each file says at its top what it
# exercises.
DATA_CASES: dict[str, bool] = {
    "every-vrrp-block.conf": False,
    "every-vrrp-keyword.conf": False,
    "inet6-after-destination.conf": False,
    "inet6-keyword-placement.conf": True,
    "instance-without-interface.conf": True,
    "instance-without-vrid.conf": True,
    "ipv6-default-routes.conf": True,
    "numeric-scopes.conf": True,
    "rule-match-options.conf": True,
    "shared-vrid-and-v3-advert.conf": True,
    "static-addresses-and-virtual-rules.conf": True,
    "static-routes-and-rules.conf": True,
    "strict-mode-ipv6-vip.conf": False,
    "strict-mode-resets.conf": False,
    "strict-mode-unicast.conf": False,
    "strict-mode.conf": True,
    "sync-group-of-one.conf": False,
    "tracking-sync-groups-and-timers.conf": True,
    "vip-options.conf": True,
    "vmac-and-vip-family.conf": True,
    "vrrp-script-without-script.conf": False,
}

# Where ours and keepalived 2.2.7 are known to disagree (strict: a fix shows up here).
KNOWN_DISAGREEMENTS: dict[str, str] = {}


def data_cases() -> list[pytest.param]:
    return [pytest.param(name, id=name.removesuffix(".conf"),
                         marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DISAGREEMENTS[name])]
                         if name in KNOWN_DISAGREEMENTS else [])
            for name in sorted(DATA_CASES)]


def test_every_data_file_is_a_case():
    assert sorted(p.name for p in DATA.glob("*.conf")) == sorted(DATA_CASES)
    assert set(KNOWN_DISAGREEMENTS) <= set(DATA_CASES)


@pytest.mark.skipif(not KEEPALIVED.exists(), reason="keepalived missing: `make test-netns` "
                    "installs Debian's keepalived")
@pytest.mark.parametrize("name", data_cases())
def test_data_files_agree_with_keepalived(lab: Lab, name: str):
    conf = DATA / name
    ref = reference_verdict(lab, conf)
    assert any(m.verdict is Verdict.REJECTED for m in ref.messages) == DATA_CASES[name], (
        ref.describe())
    assert_agrees(ref, our_problems(conf))


# ---------------------------------------------------------------- the table itself


def every_case(tmp_path: Path) -> list[tuple[Path, str | None]]:
    """(file, config id) of every case above: the samples, CASES and the data files."""
    cases: list[tuple[Path, str | None]] = [
        (param.values[0], param.values[1]) for param in sample_cases()]
    for name, (text, _) in sorted(CASES.items()):
        conf = tmp_path / f"{name}.conf"
        conf.write_text(text)
        cases.append((conf, None))
    cases += [(DATA / name, None) for name in sorted(DATA_CASES)]
    return cases


@pytest.mark.skipif(not KEEPALIVED.exists() or not SAMPLES.is_dir(),
                    reason="keepalived or its samples missing: `make test-netns` installs "
                           "Debian's keepalived")
def test_every_row_of_the_message_table_is_exercised(lab: Lab, tmp_path: Path):
    """A row no config exercises may be wrong unnoticed, or shadowed by one above it."""
    matched: set[int] = set()
    for conf, config_id in every_case(tmp_path):
        for message in reference_verdict(lab, conf, config_id=config_id).messages:
            row = matching_row(message.text)
            if row is not None:
                matched.add(row)
    unexercised = [pattern for row, (_, pattern) in enumerate(MESSAGE_TABLE)
                   if row not in matched]
    assert unexercised == [], "rows no case exercises (add a case or drop the row)"


@pytest.mark.skipif(not KEEPALIVED.exists(), reason="keepalived missing: `make test-netns` "
                    "installs Debian's keepalived")
def test_missing_include_fails_only_when_asked(lab: Lab, tmp_path: Path):
    """keepalived loads around a missing include, and refuses it under ``-e``; ours
    warns, and fails under ``strict`` (the same promise for `check-config --strict`)."""
    conf = tmp_path / "include.conf"
    conf.write_text("include /nonexistent/lvsd-test/missing.conf\n" + VRRP_OK)
    relaxed = reference_verdict(lab, conf)
    assert relaxed.exit_code == 0, relaxed.describe()
    strict = reference_verdict(lab, conf, extra=("-e",))
    assert strict.exit_code != 0, strict.describe()

    ours = our_problems(conf)
    assert not [p for p in ours if p.severity is Severity.ERROR], render(ours)
    assert at_line(ours, str(conf), 1), render(ours)
    try:
        load_keepalived(str(conf), strict=True)
    except ConfigError as exc:
        assert at_line(exc.problems, str(conf), 1), render(exc.problems)
    else:
        pytest.fail("strict loading of a config with a missing include did not fail")
