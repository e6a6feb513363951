"""`director drain / undrain / drains`: naming real servers and virtual servers as
operators type them, drains.json as the running director reads it, and clear failures
with near matches."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

import pytest

from director.cli.drain import UsageError, main, parse_endpoint, vs_matcher
from director.config.load import load_config
from director.pool import RealServerId, virtual_server_id
from director.state_files import process_argv, read_drains, write_drains

CONF = """\
virtual_server_group web {
    192.0.2.5 80
    fwmark 9
}
virtual_server 192.0.2.1 80 {
    protocol TCP
    real_server 192.0.2.11 80 {
    }
    real_server 192.0.2.12 80 {
    }
}
virtual_server 192.0.2.1 443 {
    protocol TCP
    real_server 192.0.2.11 443 {
    }
}
virtual_server 192.0.2.1 53 {
    protocol UDP
    real_server 192.0.2.11 53 {
    }
}
virtual_server fwmark 7 {
    real_server 192.0.2.11 {
    }
}
virtual_server group web {
    protocol TCP
    real_server 192.0.2.13 80 {
    }
}
virtual_server 2001:db8::1 80 {
    protocol TCP
    real_server 2001:db8::11 80 {
    }
}
"""


@pytest.fixture
def conf(tmp_path: Path) -> str:
    path = tmp_path / "keepalived.conf"
    path.write_text(CONF)
    return str(path)


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "state")


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


NO_DIRECTOR = "no director is running with state directory {state}: the change applies " \
              "when it starts"


# ---------------------------------------------------------------- drain and undrain


def test_a_server_is_drained_in_every_virtual_server_that_has_it(capsys, conf, state) -> None:
    code, out, err = run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.11:80")
    assert (code, err) == (0, "")
    assert out == ["drained 192.0.2.11:80 in [192.0.2.1]:TCP:80",
                   NO_DIRECTOR.format(state=state)]
    assert read_drains(state) == {RealServerId("[192.0.2.1]:TCP:80", "192.0.2.11", 80)}


def test_without_a_port_every_port_of_the_address_is_drained(capsys, conf, state) -> None:
    code, out, _ = run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.11")
    assert code == 0
    assert out[:-1] == ["drained 192.0.2.11:80 in [192.0.2.1]:TCP:80",
                        "drained 192.0.2.11:443 in [192.0.2.1]:TCP:443",
                        "drained 192.0.2.11:53 in [192.0.2.1]:UDP:53",
                        "drained 192.0.2.11 in FWM 7"]
    assert len(read_drains(state)) == 4


def test_drains_accumulate_and_undrain_removes_only_its_server(capsys, conf, state) -> None:
    run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.11:80")
    run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.12:80")
    code, out, _ = run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.12:80")
    assert (code, out) == (0, ["192.0.2.12:80 in [192.0.2.1]:TCP:80: already drained",
                               f"no director is running with state directory {state}"])
    code, out, _ = run(capsys, "undrain", "-f", conf, "--state-dir", state, "192.0.2.11:80")
    assert (code, out) == (0, ["undrained 192.0.2.11:80 in [192.0.2.1]:TCP:80",
                               NO_DIRECTOR.format(state=state)])
    assert read_drains(state) == {RealServerId("[192.0.2.1]:TCP:80", "192.0.2.12", 80)}
    code, out, _ = run(capsys, "undrain", "-f", conf, "--state-dir", state, "192.0.2.11:80")
    assert (code, out[0]) == (0, "192.0.2.11:80 in [192.0.2.1]:TCP:80: already not drained")


def test_ipv6_real_servers(capsys, conf, state) -> None:
    code, out, _ = run(capsys, "drain", "-f", conf, "--state-dir", state, "[2001:db8::11]:80")
    assert (code, out[0]) == (0, "drained [2001:db8::11]:80 in [2001:db8::1]:TCP:80")
    assert read_drains(state) == {RealServerId("[2001:db8::1]:TCP:80", "2001:db8::11", 80)}
    code, _, _ = run(capsys, "undrain", "-f", conf, "--state-dir", state, "2001:DB8::11")
    assert code == 0 and read_drains(state) == frozenset()


@pytest.mark.parametrize(("vs", "drained"), [
    ("192.0.2.1:443", ["192.0.2.11:443 in [192.0.2.1]:TCP:443"]),
    ("tcp:192.0.2.1:443", ["192.0.2.11:443 in [192.0.2.1]:TCP:443"]),
    ("UDP:192.0.2.1:53", ["192.0.2.11:53 in [192.0.2.1]:UDP:53"]),
    ("tcp 192.0.2.1:80", ["192.0.2.11:80 in [192.0.2.1]:TCP:80"]),
    ("[192.0.2.1]:TCP:80", ["192.0.2.11:80 in [192.0.2.1]:TCP:80"]),
    ("192.0.2.1", ["192.0.2.11:80 in [192.0.2.1]:TCP:80",
                   "192.0.2.11:443 in [192.0.2.1]:TCP:443",
                   "192.0.2.11:53 in [192.0.2.1]:UDP:53"]),
    ("fwmark:7", ["192.0.2.11 in FWM 7"]),
    ("FWM 7", ["192.0.2.11 in FWM 7"]),
])
def test_the_virtual_server_as_operators_type_it(capsys, conf, state, vs, drained) -> None:
    code, out, err = run(capsys, "drain", "-f", conf, "--state-dir", state,
                         "--virtual-server", vs, "192.0.2.11")
    assert (code, err) == (0, "")
    assert out[:-1] == [f"drained {d}" for d in drained]


def test_groups_by_name_or_by_id(capsys, conf, state) -> None:
    for vs in ("group:web", "group web TCP"):
        code, out, _ = run(capsys, "drain", "-f", conf, "--state-dir", state,
                           "--virtual-server", vs, "192.0.2.13:80")
        assert code == 0 and out[0] == "drained 192.0.2.13:80 in group web TCP"
        code, out, _ = run(capsys, "undrain", "-f", conf, "--state-dir", state,
                           "--virtual-server", vs, "192.0.2.13:80")
        assert code == 0 and out[0] == "undrained 192.0.2.13:80 in group web TCP"


def test_every_virtual_server_id_names_its_virtual_server(conf) -> None:
    config, _ = load_config(conf)
    for vs in config.virtual_servers:
        assert [v for v in config.virtual_servers
                if vs_matcher(virtual_server_id(vs))(v)] == [vs]


# ---------------------------------------------------------------- failures


def test_an_unknown_real_server_fails_with_near_matches(capsys, conf, state) -> None:
    code, out, err = run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.14:80")
    assert (code, out) == (1, [])
    assert err == (f"director drain: no real server 192.0.2.14:80 in {conf}; did you mean: "
                   "192.0.2.13:80, 192.0.2.12:80, 192.0.2.11:80, 192.0.2.11, "
                   "192.0.2.11:53\n")
    assert read_drains(state) == frozenset()


def test_a_server_not_in_the_chosen_virtual_server_fails(capsys, conf, state) -> None:
    code, _, err = run(capsys, "drain", "-f", conf, "--state-dir", state,
                       "--virtual-server", "192.0.2.1:443", "192.0.2.12:80")
    assert code == 1
    assert err == ("director drain: no real server 192.0.2.12:80 in virtual server(s) "
                   "[192.0.2.1]:TCP:443; did you mean: 192.0.2.11:443\n")


def test_an_unknown_virtual_server_fails_with_near_matches(capsys, conf, state) -> None:
    code, _, err = run(capsys, "drain", "-f", conf, "--state-dir", state,
                       "--virtual-server", "192.0.2.1:8080", "192.0.2.11")
    assert code == 1
    assert err.startswith(f"director drain: no virtual server '192.0.2.1:8080' in {conf}; "
                          "did you mean: [192.0.2.1]:TCP:80")
    assert "(forms: 192.0.2.1:80, tcp:192.0.2.1:80" in err


@pytest.mark.parametrize(("server", "message"), [
    ("web1", "'web1' is not ADDRESS[:PORT]"),
    ("192.0.2.11:http", "'http' in '192.0.2.11:http' is not a port (0-65535)"),
    ("192.0.2.11:70000", "'70000' in '192.0.2.11:70000' is not a port"),
    ("[192.0.2.11", "'[192.0.2.11' is not ADDRESS[:PORT]"),
])
def test_bad_server_names_fail(capsys, conf, state, server, message) -> None:
    code, _, err = run(capsys, "drain", "-f", conf, "--state-dir", state, server)
    assert code == 1 and message in err


def test_an_invalid_configuration_fails(capsys, tmp_path, state) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("virtual_server 192.0.2.1 80 {\n  protocol TCP\n  quorum 0\n}\n")
    code, _, err = run(capsys, "drain", "-f", str(bad), "--state-dir", state, "192.0.2.11")
    assert code == 1
    assert f"director drain: {bad}: configuration is NOT valid" in err
    assert f"{bad}:3:10: quorum 0 is out of range" in err


def test_a_corrupt_drains_file_fails_and_is_left_alone(capsys, conf, state) -> None:
    Path(state).mkdir()
    (Path(state) / "drains.json").write_text("{")
    code, _, err = run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.11:80")
    assert code == 1
    assert err.startswith(f"director drain: {state}/drains.json: not valid JSON")
    assert (Path(state) / "drains.json").read_text() == "{"


# ---------------------------------------------------------------- across reloads


def test_a_drain_of_a_server_gone_from_the_config_can_be_lifted(capsys, conf, state) -> None:
    gone = RealServerId("[192.0.2.1]:TCP:8080", "192.0.2.99", 8080)
    kept = RealServerId("[192.0.2.1]:TCP:80", "192.0.2.11", 80)
    write_drains(state, {gone, kept})
    code, out, _ = run(capsys, "undrain", "-f", conf, "--state-dir", state, "192.0.2.99")
    assert (code, out[0]) == (0, "undrained 192.0.2.99:8080 in [192.0.2.1]:TCP:8080")
    write_drains(state, {gone, kept})
    code, out, _ = run(capsys, "undrain", "-f", conf, "--state-dir", state,
                       "--virtual-server", "[192.0.2.1]:TCP:8080", "192.0.2.99:8080")
    assert code == 0 and read_drains(state) == {kept}


def test_a_yaml_configuration_names_servers_the_same_way(capsys, tmp_path, state) -> None:
    conf = tmp_path / "director.yaml"
    conf.write_text("virtual_servers:\n  - address: 192.0.2.1\n    port: 80\n"
                    "    protocol: TCP\n    real_servers:\n      - address: 192.0.2.11\n")
    code, out, _ = run(capsys, "drain", "-f", str(conf), "--state-dir", state, "192.0.2.11")
    assert (code, out[0]) == (0, "drained 192.0.2.11:80 in [192.0.2.1]:TCP:80")


# ---------------------------------------------------------------- a running director


@pytest.fixture
def running_director(tmp_path: Path, state: str):
    program = tmp_path / "bin" / "director"
    program.parent.mkdir()
    program.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    program.chmod(0o755)
    process = subprocess.Popen([str(program)])
    deadline = time.monotonic() + 5
    while "director" not in " ".join(process_argv(process.pid) or []):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    Path(state).mkdir(exist_ok=True)
    (Path(state) / "director.pid").write_text(f"{process.pid}\n")
    yield process.pid
    process.kill()
    process.wait()


def test_the_running_director_is_named(capsys, conf, state, running_director) -> None:
    code, out, _ = run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.12")
    assert code == 0
    assert out[-1] == (f"director running (pid {running_director}): it applies the change "
                       f"at its next reading of {state}/drains.json")
    code, out, _ = run(capsys, "drains", "--state-dir", state)
    assert out[-1] == f"director running (pid {running_director})"


# ---------------------------------------------------------------- drains


def test_drains_lists_what_is_drained(capsys, conf, state) -> None:
    code, out, _ = run(capsys, "drains", "--state-dir", state)
    assert (code, out) == (0, ["no drained real servers",
                               f"no director is running with state directory {state}"])
    run(capsys, "drain", "-f", conf, "--state-dir", state, "192.0.2.11:80")
    run(capsys, "drain", "-f", conf, "--state-dir", state, "[2001:db8::11]:80")
    code, out, _ = run(capsys, "drains", "--state-dir", state)
    assert out[:3] == ["2 drained real server(s):",
                       "  192.0.2.11:80 in [192.0.2.1]:TCP:80",
                       "  [2001:db8::11]:80 in [2001:db8::1]:TCP:80"]
    code, out, _ = run(capsys, "drains", "--state-dir", state, "--json")
    assert json.loads("\n".join(out)) == {
        "version": 1, "director_pid": None,
        "drains": [{"virtual_server": "[192.0.2.1]:TCP:80", "address": "192.0.2.11",
                    "port": 80},
                   {"virtual_server": "[2001:db8::1]:TCP:80", "address": "2001:db8::11",
                    "port": 80}]}


# ---------------------------------------------------------------- naming, directly


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.11", ("192.0.2.11", None)),
    ("192.0.2.11:0", ("192.0.2.11", 0)),
    ("2001:db8::11", ("2001:db8::11", None)),
    ("[2001:db8::11]", ("2001:db8::11", None)),
    ("[2001:db8::11]:443", ("2001:db8::11", 443)),
    (" 192.0.2.11:80 ", ("192.0.2.11", 80)),
])
def test_parse_endpoint(text, expected) -> None:
    address, port = parse_endpoint(text)
    assert (address, port) == (ip_address(expected[0]), expected[1])


def test_parse_endpoint_refuses_names() -> None:
    with pytest.raises(UsageError):
        parse_endpoint("www.example.com:80")
