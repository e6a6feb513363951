"""The verdicts of the TCP_CHECK, HTTP_GET/SSL_GET and MISC_CHECK probes, without I/O:
connect errors, status / digest / regex rules per url, exit status mapping, script
security's path rule and who a script runs as."""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import re
import stat

import pytest

from checkers.http import regex_found, url_verdict
from checkers.http_client import Failure, HttpResult
from checkers.misc import (
    DEFAULT_SCRIPT_USER,
    REASON_OUTPUT,
    ScriptIdentity,
    ScriptRefused,
    ScriptRun,
    last_output_line,
    misc_verdict,
    resolve_identity,
    runs_privileged,
    unsafe_component,
)
from checkers.probe import ProbeContext
from checkers.spec import MiscCheck, RegexOption, StatusRange, Url
from checkers.tcp import connect_error_reason

BODY = b"status: healthy\nversion: 1.2.3\n"
DIGEST = hashlib.md5(BODY).hexdigest()


def response(status: int | None = 200, body: bytes = BODY, *, failure: Failure | None = None,
             reason: str = "", headers: tuple[tuple[str, str], ...] = ()) -> HttpResult:
    return HttpResult(failure=failure, reason=reason, status=status,
                      digest=hashlib.md5(body).hexdigest(), body=body, headers=headers,
                      body_length=len(body), complete=failure is None)


# ---------------------------------------------------------------- TCP


@pytest.mark.parametrize(("err", "reason"), [
    (errno.ECONNREFUSED, "connection refused"),
    (errno.EHOSTUNREACH, "no route to host"),
    (errno.ENETUNREACH, "network unreachable"),
    (errno.ECONNRESET, "connection reset"),
    (errno.EPERM, "connect not permitted (firewall?)"),
    (errno.EADDRNOTAVAIL, "connect failed: Cannot assign requested address"),
    (None, "connect failed: unknown error"),
])
def test_connect_error_reasons(err: int | None, reason: str) -> None:
    assert connect_error_reason(err) == reason


# ---------------------------------------------------------------- HTTP: status


@pytest.mark.parametrize("code", [200, 204, 299])
def test_default_status_codes_accept_2xx(code: int) -> None:
    assert url_verdict(Url(path="/health"), response(code)) is None


@pytest.mark.parametrize(("code", "reason"), [
    (199, "HTTP status 199 on /health"),
    (300, "HTTP status 300 on /health"),
    (404, "HTTP status 404 on /health"),
    (503, "HTTP status 503 on /health"),
])
def test_default_status_codes_refuse_the_rest(code: int, reason: str) -> None:
    assert url_verdict(Url(path="/health"), response(code)) == reason


def test_a_redirect_fails_by_default_and_says_where_it_points() -> None:
    moved = response(302, headers=(("Location", "/login"),))
    assert url_verdict(Url(path="/"), moved) == "HTTP status 302 on / (redirect to /login)"
    assert url_verdict(Url(path="/"), response(301)) == "HTTP status 301 on /"
    accepts_3xx = Url(path="/", status_code=(StatusRange(low=300, high=399),))
    assert url_verdict(accepts_3xx, moved) is None


def test_status_code_sets_and_ranges() -> None:
    url = Url(path="/x", status_code=(StatusRange(low=200, high=200),
                                      StatusRange(low=400, high=499),
                                      StatusRange(low=503, high=503)))
    assert [url_verdict(url, response(c)) is None for c in (200, 201, 404, 499, 500, 503)] == [
        True, False, True, True, False, True]


# ---------------------------------------------------------------- HTTP: failures


def test_a_connection_failure_is_reported_as_is() -> None:
    for failure, reason in ((Failure.CONNECT_FAILED, "connection refused"),
                            (Failure.CONNECT_TIMEOUT, "connect timeout after 3.0 s"),
                            (Failure.TLS_FAILED, "TLS handshake failed: WRONG_VERSION_NUMBER")):
        result = response(None, b"", failure=failure, reason=reason)
        assert url_verdict(Url(path="/health"), result) == reason


def test_a_response_failure_names_the_url() -> None:
    result = response(200, b"xx", failure=Failure.READ_TIMEOUT,
                      reason="response exceeded 3.0 s deadline (40 bytes received)")
    assert url_verdict(Url(path="/health"), result) == (
        "response exceeded 3.0 s deadline (40 bytes received) on /health")
    garbage = response(None, b"", failure=Failure.MALFORMED,
                       reason="HTTP status line malformed: b'garbage'")
    assert url_verdict(Url(path="/"), garbage) == "HTTP status line malformed: b'garbage' on /"


def test_a_refused_status_wins_over_a_later_failure() -> None:
    result = response(503, b"x", failure=Failure.TRUNCATED,
                      reason="connection closed after 1 of 10 body bytes")
    assert url_verdict(Url(path="/health"), result) == "HTTP status 503 on /health"


def test_a_failure_after_an_accepted_status_still_fails() -> None:
    result = response(200, b"x", failure=Failure.BODY_TOO_LARGE,
                      reason="response body exceeded 100 bytes")
    assert url_verdict(Url(path="/big"), result) == "response body exceeded 100 bytes on /big"


# ---------------------------------------------------------------- HTTP: digest


def test_digest_must_match() -> None:
    assert url_verdict(Url(path="/index.html", digest=DIGEST), response()) is None
    assert url_verdict(Url(path="/index.html", digest=DIGEST.upper()), response()) is None
    wrong = "0" * 32
    assert url_verdict(Url(path="/index.html", digest=wrong), response()) == (
        f"digest mismatch on /index.html: got {DIGEST}, expected {wrong}")


def test_status_is_judged_before_the_digest() -> None:
    assert url_verdict(Url(path="/", digest="0" * 32), response(500)) == "HTTP status 500 on /"


# ---------------------------------------------------------------- HTTP: regex


def test_regex_found_and_not_found() -> None:
    assert url_verdict(Url(path="/health", regex="healthy"), response()) is None
    assert url_verdict(Url(path="/health", regex="ok"), response()) == (
        "regex 'ok' not found in /health")
    assert url_verdict(Url(path="/health", regex=r"version: \d+\.\d+"), response()) is None


def test_regex_no_match_reverses_the_sense() -> None:
    assert url_verdict(Url(path="/health", regex="error", regex_no_match=True),
                       response()) is None
    assert url_verdict(Url(path="/health", regex="healthy", regex_no_match=True),
                       response()) == "regex 'healthy' found in /health (regex_no_match)"


def test_regex_options() -> None:
    assert url_verdict(Url(path="/", regex="HEALTHY"), response()) == (
        "regex 'HEALTHY' not found in /")
    caseless = Url(path="/", regex="HEALTHY", regex_options=(RegexOption.CASELESS,))
    assert url_verdict(caseless, response()) is None
    anchored = Url(path="/", regex="^version", regex_options=(RegexOption.MULTILINE,))
    assert url_verdict(anchored, response()) is None
    assert url_verdict(Url(path="/", regex="^version"), response()) is not None
    across = Url(path="/", regex="healthy.version", regex_options=(RegexOption.DOTALL,))
    assert url_verdict(across, response()) is None
    assert url_verdict(Url(path="/", regex="healthy.version"), response()) is not None


def test_regex_offsets_bound_where_a_match_may_start() -> None:
    body = b"0123456789ok456789ok"  # "ok" starts at 10 and 18
    assert regex_found(Url(regex="ok"), body)
    assert regex_found(Url(regex="ok", regex_min_offset=11), body)  # the one at 18
    assert not regex_found(Url(regex="ok", regex_min_offset=19), body)
    assert regex_found(Url(regex="ok", regex_max_offset=10), body)
    assert not regex_found(Url(regex="ok", regex_max_offset=9), body)
    assert not regex_found(Url(regex="ok", regex_min_offset=11, regex_max_offset=17), body)
    url = Url(path="/p", regex="ok", regex_min_offset=11, regex_max_offset=17)
    assert url_verdict(url, response(body=body)) == "regex 'ok' not found in /p (offsets 11-17)"
    assert url_verdict(Url(path="/p", regex="zz", regex_min_offset=3),
                       response(body=body)) == "regex 'zz' not found in /p (offsets 3-)"


def test_regex_on_a_binary_body() -> None:
    body = bytes(range(256))
    assert regex_found(Url(regex="\x00\x01\x02"), body)
    assert not regex_found(Url(regex="\x02\x01"), body)


def test_a_regex_that_cannot_compile_fails_with_the_error() -> None:
    reason = url_verdict(Url(path="/", regex="(unclosed"), response())
    assert reason == ("regex '(unclosed' of / cannot be used: "
                      "missing ), unterminated subpattern at position 0")


def test_digest_is_judged_before_the_regex() -> None:
    url = Url(path="/", digest="0" * 32, regex="nothing-like-this")
    assert url_verdict(url, response()).startswith("digest mismatch on /")


# ---------------------------------------------------------------- MISC: exit status


def verdict(run: ScriptRun, dynamic: bool = False) -> tuple[bool, int | None, str]:
    return misc_verdict(run, dynamic=dynamic, program="/usr/local/bin/check", timeout=3.0)


@pytest.mark.parametrize(("status", "up"), [(0, True), (1, False), (2, False), (255, False)])
def test_without_misc_dynamic_only_zero_is_up(status: int, up: bool) -> None:
    ok, weight, reason = verdict(ScriptRun(status=status))
    assert (ok, weight) == (up, None)
    assert reason == f"/usr/local/bin/check exited with status {status}"


@pytest.mark.parametrize(("status", "up", "weight"), [
    (0, True, None), (1, False, None), (2, True, 0), (3, True, 1), (12, True, 10),
    (255, True, 253),
])
def test_misc_dynamic_weights(status: int, up: bool, weight: int | None) -> None:
    ok, got_weight, reason = verdict(ScriptRun(status=status), dynamic=True)
    assert (ok, got_weight) == (up, weight)
    expected = f"/usr/local/bin/check exited with status {status}"
    assert reason == (expected if weight is None else f"{expected}: weight {weight}")


def test_failures_quote_the_last_line_of_output() -> None:
    run = ScriptRun(status=1, output_tail=b"checking db\nERROR: db unreachable\n\n")
    assert verdict(run)[2] == '/usr/local/bin/check exited with status 1: "ERROR: db unreachable"'
    assert verdict(ScriptRun(status=0, output_tail=b"fine\n"))[2] == (
        "/usr/local/bin/check exited with status 0")


def test_signal_and_timeout() -> None:
    assert verdict(ScriptRun(signal=9)) == (
        False, None, "/usr/local/bin/check killed by signal 9 (SIGKILL)")
    assert verdict(ScriptRun(timed_out=True, output_tail=b"waiting\n")) == (
        False, None, '/usr/local/bin/check timed out after 3.0 s (process group killed): '
                     '"waiting"')
    assert verdict(ScriptRun(timed_out=True), dynamic=True)[0] is False


def test_last_output_line_is_printable_and_short() -> None:
    assert last_output_line(b"") == ""
    assert last_output_line(b"a\n  \n") == "a"
    assert last_output_line(b"bad\x1b[31m red\r\n") == "bad?[31m red"
    assert last_output_line(bytes(range(256))) == "[binary output]"
    long = last_output_line(b"x" * 5000)
    assert len(long) == REASON_OUTPUT and long.endswith("...")
    assert last_output_line("d\u00e9j\u00e0 vu\n".encode()) == "d\u00e9j\u00e0 vu"


# ---------------------------------------------------------------- MISC: script security


def fake_tree(entries: dict[str, tuple[int, int, int]]):
    """An lstat over {path: (mode, uid, gid)}."""
    def lstat(path: str) -> os.stat_result:
        if path not in entries:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        mode, uid, gid = entries[path]
        return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))
    return lstat


DIR = stat.S_IFDIR
FILE = stat.S_IFREG
SAFE = {"/": (DIR | 0o755, 0, 0), "/usr": (DIR | 0o755, 0, 0),
        "/usr/local": (DIR | 0o2775, 0, 0),  # group root may write: still safe
        "/usr/local/check": (FILE | 0o755, 0, 0),
        "/tmp": (DIR | 0o1777, 0, 0), "/tmp/check": (FILE | 0o755, 0, 0)}


@pytest.mark.parametrize(("path", "change", "problem"), [
    ("/usr/local/check", {}, None),
    ("/tmp/check", {}, None),  # a sticky directory is fine
    ("/usr/local/check", {"/usr/local/check": (FILE | 0o757, 0, 0)},
     "/usr/local/check is writable by everyone"),
    ("/usr/local/check", {"/usr/local/check": (FILE | 0o775, 0, 50)},
     "/usr/local/check is writable by group 50"),
    ("/usr/local/check", {"/usr": (DIR | 0o777, 0, 0)}, "/usr is writable by everyone"),
    ("/usr/local/check", {"/usr/local": (DIR | 0o775, 0, 50)},
     "/usr/local is writable by group 50"),
    ("/usr/local/check", {"/usr/local/check": (FILE | 0o755, 1000, 0)},
     "/usr/local/check is owned by uid 1000, not root"),
    ("/usr/local/check", {"/usr/local": (DIR | 0o755, 1000, 0)},
     "/usr/local is owned by uid 1000, not root"),
    ("/tmp/check", {"/tmp/check": (FILE | 0o757, 0, 0)}, "/tmp/check is writable by everyone"),
    ("/usr/local/check", {"/usr/local": (FILE | 0o755, 0, 0)},
     "/usr/local is not a directory"),
    ("/usr/local/check", {"/usr/local/check": (DIR | 0o755, 0, 0)},
     "/usr/local/check is not a regular file"),
    ("/usr/local/missing", {}, "/usr/local/missing: No such file or directory"),
])
def test_unsafe_component(path: str, change: dict, problem: str | None) -> None:
    assert unsafe_component(path, fake_tree({**SAFE, **change})) == problem


def file_stat(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((FILE | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


def test_which_runs_are_privileged() -> None:
    plain = file_stat(0o755)
    assert runs_privileged(ScriptIdentity(user="root", uid=0, gid=0), plain)
    assert runs_privileged(ScriptIdentity(user="x", uid=1000, gid=0), plain)
    nobody = ScriptIdentity(user="nobody", uid=65534, gid=65534)
    assert not runs_privileged(nobody, plain)
    assert runs_privileged(nobody, file_stat(0o4755))            # set-uid root
    assert runs_privileged(nobody, file_stat(0o2755))            # set-gid root
    assert not runs_privileged(nobody, file_stat(0o4755, uid=1000, gid=1000))
    assert not runs_privileged(nobody, file_stat(0o4644))        # set-uid, not executable


# ---------------------------------------------------------------- MISC: who runs it


def test_the_checker_user_comes_first_then_the_global_one() -> None:
    nobody = pwd.getpwnam("nobody")
    root = pwd.getpwnam("root")
    context = ProbeContext(script_user="root")
    found = resolve_identity(MiscCheck(user="nobody"), context)
    assert (found.user, found.uid, found.gid) == ("nobody", nobody.pw_uid, nobody.pw_gid)
    assert nobody.pw_gid in found.groups
    found = resolve_identity(MiscCheck(), context)
    assert (found.user, found.uid, found.gid) == ("root", root.pw_uid, root.pw_gid)


def test_a_group_replaces_the_users_own() -> None:
    found = resolve_identity(MiscCheck(user="nobody", group="root"), ProbeContext())
    assert (found.uid, found.gid) == (pwd.getpwnam("nobody").pw_uid, 0)
    found = resolve_identity(MiscCheck(), ProbeContext(script_user="nobody",
                                                       script_group="root"))
    assert found.gid == 0


def test_unknown_users_and_groups_are_refused() -> None:
    with pytest.raises(ScriptRefused, match=re.escape("script user 'no-such-user' does not "
                                                      "exist")):
        resolve_identity(MiscCheck(user="no-such-user"), ProbeContext())
    with pytest.raises(ScriptRefused, match=re.escape("script group 'no-such-group' does not "
                                                      "exist")):
        resolve_identity(MiscCheck(user="nobody", group="no-such-group"), ProbeContext())


def _has_default_user() -> bool:
    try:
        pwd.getpwnam(DEFAULT_SCRIPT_USER)
    except KeyError:
        return False
    return True


@pytest.mark.skipif(_has_default_user(), reason=f"{DEFAULT_SCRIPT_USER} exists here")
def test_without_a_user_scripts_run_as_the_daemon_unless_script_security() -> None:
    assert resolve_identity(MiscCheck(), ProbeContext()) == ScriptIdentity()
    assert not ScriptIdentity().switches
    with pytest.raises(ScriptRefused) as refused:
        resolve_identity(MiscCheck(), ProbeContext(enable_script_security=True))
    assert str(refused.value) == (
        "no script user: neither user nor global script_user is set and 'keepalived_script' "
        "does not exist; enable_script_security does not run scripts as root unless "
        "script_user root is set")
    explicit = resolve_identity(MiscCheck(), ProbeContext(enable_script_security=True,
                                                          script_user="root"))
    assert explicit.uid == 0
