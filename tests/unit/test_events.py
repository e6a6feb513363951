"""The event lines: logfmt a log shipper can parse and a person can read."""

from __future__ import annotations

import logging
import shlex

from director import events
from director.events import format_line, format_value


def test_a_line_is_the_event_then_the_fields_in_order():
    line = format_line("real_server_down", virtual_server="[192.0.2.10]:TCP:80",
                       address="198.51.100.11", port=80, reason="connection refused")
    assert line == ('event=real_server_down virtual_server=[192.0.2.10]:TCP:80 '
                    'address=198.51.100.11 port=80 reason="connection refused"')


def test_values_with_blanks_quotes_or_equals_are_quoted_and_parse_back():
    tricky = ['two words', 'say "hi"', 'a=b', 'back\\slash', '']
    line = format_line("x", **{f"k{i}": v for i, v in enumerate(tricky)})
    # shlex reads the quoting back: each field is one token, its value intact
    tokens = shlex.split(line)
    assert tokens[0] == "event=x"
    assert [t.split("=", 1)[1] for t in tokens[1:]] == tricky


def test_line_breaks_never_split_a_line():
    line = format_line("reload_refused", first="a.conf:3: error\nmore")
    assert "\n" not in line
    assert line.endswith('first="a.conf:3: error\\nmore"')


def test_none_is_left_out_and_booleans_are_words():
    assert format_line("quorum_up", starting=None, stopping=False, ok=True) == \
        "event=quorum_up stopping=false ok=true"


def test_floats_keep_their_precision():
    assert format_value(1764000000.123456) == "1764000000.123456"
    assert format_value(0.25) == "0.25"


def test_emit_logs_one_info_line_on_the_events_logger(caplog):
    caplog.set_level(logging.INFO, events.LOGGER_NAME)
    events.emit("reload_ok", role="checkers", seconds=0.5)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("director.events", logging.INFO, "event=reload_ok role=checkers seconds=0.5")]


def test_a_vrrp_transition_is_one_line_and_asks_for_its_mail(tmp_path, caplog):
    from director.config.load import load_config
    from director.run_vrrp import transition_handler
    from vrrp.runtime import Transition

    path = tmp_path / "keepalived.conf"
    path.write_text("""
vrrp_sync_group G1 {
    group {
        VI_1
    }
    smtp_alert
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.100/24
    }
}
""")
    config, _ = load_config(str(path))

    class Alerts:
        def __init__(self) -> None:
            self.asked: list[tuple] = []

        def vrrp(self, kind, name, state, enabled):
            self.asked.append((kind, name, state, enabled))

    alerts = Alerts()
    caplog.set_level(logging.INFO, events.LOGGER_NAME)
    handler = transition_handler([config], alerts)
    handler(Transition("instance", "VI_1", "BACKUP", "MASTER", 100, 51, "eth0",
                       "192.0.2.1", "no advert within the master-down interval"))
    handler(Transition("group", "G1", "BACKUP", "MASTER", None, None, None, None, ""))
    assert [r.getMessage() for r in caplog.records] == [
        "event=vrrp_transition kind=instance name=VI_1 old=BACKUP new=MASTER priority=100 "
        'vrid=51 interface=eth0 master=192.0.2.1 reason="no advert within the '
        'master-down interval"',
        "event=vrrp_transition kind=group name=G1 old=BACKUP new=MASTER"]
    # the instance has no smtp_alert of its own; the group asks for mail
    assert alerts.asked == [("instance", "VI_1", "MASTER", False),
                            ("group", "G1", "MASTER", True)]
