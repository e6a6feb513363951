"""smtp_alert: keepalived's subjects and bodies, who gets told, and a sender that never
blocks and logs a dead mail server once."""

from __future__ import annotations

import logging
import smtplib
import textwrap
import threading

import pytest

from director.config.load import load_config
from director.pool import QuorumChanged
from director.smtp_alert import (
    Mail,
    MailSender,
    MailSettings,
    SmtpAlerts,
    message_text,
    quorum_mail,
    real_server_mail,
    vrrp_mail,
    vrrp_mail_wanted,
)

GLOBALS = """
global_defs {
    router_id lb-a
    notification_email {
        ops@example.org
        oncall@example.org
    }
    notification_email_from director@example.org
    smtp_server 127.0.0.1 2525
    smtp_helo_name lb-a.example.org
    smtp_connect_timeout 7
}
"""

SERVICE = """
virtual_server 192.0.2.10 80 {
    delay_loop 5
    lb_algo rr
    lb_kind DR
    protocol TCP
    %s
    real_server 198.51.100.11 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 198.51.100.12 80 {
        smtp_alert off
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
"""


def load(tmp_path, text: str):
    path = tmp_path / "keepalived.conf"
    path.write_text(textwrap.dedent(text))
    config, _ = load_config(str(path))
    return config


class Delivered:
    """A deliver function that records, and fails while `failing` is set."""

    def __init__(self) -> None:
        self.mails: list[tuple[MailSettings, Mail]] = []
        self.failing: Exception | None = None
        self.done = threading.Semaphore(0)

    def __call__(self, settings: MailSettings, mail: Mail) -> None:
        try:
            if self.failing is not None:
                raise self.failing
            self.mails.append((settings, mail))
        finally:
            self.done.release()

    def wait(self, count: int) -> None:
        for _ in range(count):
            assert self.done.acquire(timeout=5), "the sender did not deliver in time"


def test_settings_from_global_defs(tmp_path):
    config = load(tmp_path, GLOBALS)
    settings = MailSettings.from_global_defs(config.global_defs)
    assert settings == MailSettings(
        host="127.0.0.1", port=2525, sender="director@example.org",
        recipients=("ops@example.org", "oncall@example.org"), helo="lb-a.example.org",
        timeout=7.0, router_id="lb-a")


def test_defaults_are_keepalived_at_the_host_name(tmp_path):
    config = load(tmp_path, """
        global_defs {
            notification_email {
                ops@example.org
            }
            smtp_server 192.0.2.25
        }
        """)
    settings = MailSettings.from_global_defs(config.global_defs, host_name="lb-b")
    assert (settings.port, settings.sender, settings.helo, settings.router_id) == \
        (25, "keepalived@lb-b", "lb-b", "lb-b")


def test_no_mail_without_recipients_or_server(tmp_path):
    no_server = load(tmp_path, "global_defs {\n notification_email {\n a@example.org\n }\n}\n")
    assert MailSettings.from_global_defs(no_server.global_defs) is None
    assert MailSettings.from_global_defs(load(tmp_path, "").global_defs) is None


def test_real_server_mails_say_what_keepalived_says(tmp_path):
    config = load(tmp_path, SERVICE % "")
    vs = config.virtual_servers[0]
    rs = vs.real_servers[0]
    down = real_server_mail("lb-a", vs, rs, False, "TCP_CHECK")
    assert down == Mail("[lb-a] Realserver [198.51.100.11]:tcp:80 of virtual server "
                        "[192.0.2.10]:tcp:80 - DOWN", "=> TCP CHECK failed on service <=")
    up = real_server_mail("lb-a", vs, rs, True, "HTTP_GET")
    assert up.subject.endswith(" - UP")
    assert up.body == "=> CHECK succeed on service <="


def test_quorum_and_vrrp_mails(tmp_path):
    vs = load(tmp_path, SERVICE % "quorum 2").virtual_servers[0]
    lost = quorum_mail("lb-a", vs, QuorumChanged("x", False, 1, 2))
    assert lost == Mail("[lb-a] Virtualserver [192.0.2.10]:tcp:80 - DOWN",
                        "=> Lost quorum 2+0=2 <= 1 <=")
    assert vrrp_mail("lb-a", "instance", "VI_1", "MASTER") == Mail(
        "[lb-a] VRRP Instance VI_1 - Entering MASTER state",
        "=> VRRP Instance is now owning VRRP VIPs <=")
    assert vrrp_mail("lb-a", "group", "G1", "BACKUP") == Mail(
        "[lb-a] VRRP Group G1 - Entering BACKUP state",
        "=> All VRRP group instances are now in BACKUP state <=")
    assert vrrp_mail("lb-a", "instance", "VI_1", "INIT") is None


def test_message_headers_name_every_recipient(tmp_path):
    settings = MailSettings.from_global_defs(load(tmp_path, GLOBALS).global_defs)
    text = message_text(settings, Mail("[lb-a] S", "=> B <="), date="Mon, 1 Jan 2024")
    assert text == ("Date: Mon, 1 Jan 2024\r\nFrom: director@example.org\r\n"
                    "Subject: [lb-a] S\r\nX-Mailer: Keepalived\r\n"
                    "To: ops@example.org, oncall@example.org\r\n\r\n=> B <=\r\n")


@pytest.mark.parametrize(("enabled", "state", "last", "no_faults", "wanted"), [
    (True, "MASTER", None, False, True),
    (True, "MASTER", "MASTER", False, False),   # a state is mailed once in a row
    (False, "MASTER", None, False, False),      # the instance's smtp_alert is off
    (True, "FAULT", "MASTER", True, False),     # no_email_faults
    (True, "FAULT", "MASTER", False, True),
])
def test_vrrp_policy(enabled, state, last, no_faults, wanted):
    assert vrrp_mail_wanted(enabled, state, last, no_faults) is wanted


def test_alerts_follow_each_real_servers_smtp_alert(tmp_path):
    config = load(tmp_path, GLOBALS + SERVICE % "")
    delivered = Delivered()
    alerts = SmtpAlerts(config.global_defs, deliver=delivered)
    vs = config.virtual_servers[0]
    alerted, quiet = vs.real_servers
    alerts.real_server(vs, quiet, False, "TCP_CHECK")
    alerts.real_server(vs, alerted, False, "TCP_CHECK")
    alerts.quorum(vs, QuorumChanged("x", False, 0, 1))  # the VS's smtp_alert is off
    alerts.close()
    assert [m.subject for _, m in delivered.mails] == [
        "[lb-a] Realserver [198.51.100.11]:tcp:80 of virtual server "
        "[192.0.2.10]:tcp:80 - DOWN"]


def test_vrrp_alerts_mail_a_state_once(tmp_path):
    delivered = Delivered()
    alerts = SmtpAlerts(load(tmp_path, GLOBALS).global_defs, deliver=delivered)
    for state in ("BACKUP", "MASTER", "MASTER", "BACKUP"):
        alerts.vrrp("instance", "VI_1", state, True)
    alerts.vrrp("instance", "VI_2", "MASTER", False)
    alerts.close()
    assert [m.subject.rsplit(" - ", 1)[1] for _, m in delivered.mails] == [
        "Entering BACKUP state", "Entering MASTER state", "Entering BACKUP state"]


def test_a_dead_server_is_logged_once_until_a_mail_gets_through(tmp_path, caplog):
    caplog.set_level(logging.INFO, "director.smtp_alert")
    settings = MailSettings.from_global_defs(load(tmp_path, GLOBALS).global_defs)
    delivered = Delivered()
    delivered.failing = ConnectionRefusedError(111, "Connection refused")
    sender = MailSender(settings, deliver=delivered)
    for n in range(3):
        sender.send(Mail(f"s{n}", "b"))
    delivered.wait(3)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "127.0.0.1:2525" in errors[0].getMessage()
    delivered.failing = None
    sender.send(Mail("s3", "b"))
    sender.close()
    assert [m.subject for _, m in delivered.mails] == ["s3"]
    assert "mails reach 127.0.0.1:2525 again" in caplog.text


def test_send_never_blocks_when_the_queue_is_full(tmp_path, caplog):
    settings = MailSettings.from_global_defs(load(tmp_path, GLOBALS).global_defs)
    gate = threading.Event()

    def stuck(settings, mail):
        gate.wait(5)
        raise smtplib.SMTPServerDisconnected("gone")

    sender = MailSender(settings, deliver=stuck, max_queued=2)
    for n in range(10):
        sender.send(Mail(f"s{n}", "b"))  # returns at once though nothing is sent
    assert "dropping the newest" in caplog.text
    gate.set()
    sender.close()


def test_fifo_lines_are_keepalived_checker_lines(tmp_path):
    from director.notify import real_server_line, virtual_server_line

    vs = load(tmp_path, SERVICE % "").virtual_servers[0]
    assert real_server_line(vs, vs.real_servers[0], False) == \
        "RS [198.51.100.11]:tcp:80 [192.0.2.10]:tcp:80 DOWN\n"
    assert virtual_server_line(vs, True) == "VS [192.0.2.10]:tcp:80 UP\n"


def test_one_failing_listener_does_not_silence_the_others(tmp_path, caplog):
    from director.notify import Notifications

    vs = load(tmp_path, SERVICE % "").virtual_servers[0]
    heard = []

    class Broken:
        def real_server(self, *args):
            raise RuntimeError("boom")

    class Listener:
        def real_server(self, vs, rs, up, check):
            heard.append((str(rs.address), up))

    Notifications(Broken(), Listener()).real_server(vs, vs.real_servers[0], True, None)
    assert heard == [("198.51.100.11", True)]
    assert "notification of [198.51.100.11]:tcp:80 failed" in caplog.text


def test_a_dry_run_mails_writes_and_runs_nothing_but_logs_each(tmp_path, caplog):
    from director.config.model import Script
    from director.notify import LoggedScripts, LvsFifos
    from director.smtp_alert import log_instead_of_sending

    caplog.set_level(logging.INFO)
    fifo = tmp_path / "lvs.fifo"
    config = load(tmp_path, GLOBALS.replace("smtp_connect_timeout 7",
                                            f"smtp_connect_timeout 7\n    lvs_notify_fifo {fifo}")
                  + SERVICE % "")
    vs = config.virtual_servers[0]
    alerts = SmtpAlerts(config.global_defs, deliver=log_instead_of_sending)
    fifos = LvsFifos(config.global_defs, dry_run=True)
    alerts.real_server(vs, vs.real_servers[0], False, "TCP_CHECK")
    fifos.real_server(vs, vs.real_servers[0], False, "TCP_CHECK")
    LoggedScripts().launch(Script(command="/bin/touch " + str(tmp_path / "ran")), "DOWN")
    alerts.close()
    fifos.close()
    logged = caplog.text
    assert ("dry-run: would mail ops@example.org, oncall@example.org via 127.0.0.1:2525: "
            "[lb-a] Realserver [198.51.100.11]:tcp:80") in logged
    assert (f"dry-run: would write to {fifo}: RS [198.51.100.11]:tcp:80 "
            "[192.0.2.10]:tcp:80 DOWN") in logged
    assert f"/bin/touch {tmp_path / 'ran'} DOWN" in logged
    assert not fifo.exists() and not (tmp_path / "ran").exists()
