"""keepalived's ``smtp_alert`` mails: a real server, a virtual server's quorum or a VRRP
instance / sync group changed state, and ``notification_email`` hears of it through
``smtp_server``.

The messages are keepalived 2.2.7's (core/smtp.c, check/*.c, vrrp/vrrp_notify.c):
``Subject: [<router_id>] Realserver [192.0.2.11]:tcp:80 of virtual server
[192.0.2.10]:tcp:80 - DOWN`` with the body ``=> TCP CHECK failed on service <=``;
``[<router_id>] VRRP Instance VI_1 - Entering MASTER state`` with ``=> VRRP Instance is
now owning VRRP VIPs <=``; headers Date, From, Subject, ``X-Mailer: Keepalived``, To
(every recipient); HELO with ``smtp_helo_name``. Who is told follows keepalived: a real
server's ``smtp_alert`` (on unless turned off), a virtual server's and an instance's or
sync group's (off unless ``smtp_alert`` / ``smtp_alert_checker`` / ``smtp_alert_vrrp``
turn them on); ``no_email_faults`` keeps FAULT transitions quiet; a VRRP state is
mailed once however often it is re-entered in a row.

Mails are queued and sent by one thread with `smtplib`: a slow or dead mail server
never delays a check or an advert. A queue that fills (`MAX_QUEUED`) drops the newest
mail; a failing server is logged once, and again only after a mail got through.
"""

from __future__ import annotations

import email.utils
import logging
import queue
import smtplib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from director.config.model import GlobalDefs, RealServer, VirtualServer
from director.notify import real_server_text, virtual_server_text
from director.pool import QuorumChanged

log = logging.getLogger(__name__)

MAX_QUEUED = 256
CLOSE_TIMEOUT = 5.0  # seconds `close` waits for the queued mails at most

# The body keepalived's checkers send: "=> <label> succeed|failed on service <="
_CHECK_LABELS = {
    "TCP_CHECK": "TCP CHECK", "MISC_CHECK": "MISC CHECK", "UDP_CHECK": "UDP CHECK",
    "PING_CHECK": "ICMP CHECK", "DNS_CHECK": "DNS_CHECK:", "FILE_CHECK": "FILE CHECK",
}
_VRRP_SUBJECTS = {"MASTER": "Entering MASTER state", "BACKUP": "Entering BACKUP state",
                  "FAULT": "Entering FAULT state", "STOP": "Stopping"}
_INSTANCE_BODIES = {"MASTER": "=> VRRP Instance is now owning VRRP VIPs <=",
                    "BACKUP": "=> VRRP Instance is no longer owning VRRP VIPs <=",
                    "FAULT": "=> VRRP Instance is no longer owning VRRP VIPs <=",
                    "STOP": "=> VRRP Instance stopping <="}
_GROUP_BODIES = {"MASTER": "=> All VRRP group instances are now in MASTER state <=",
                 "BACKUP": "=> All VRRP group instances are now in BACKUP state <=",
                 "FAULT": "=> All VRRP group instances are now in FAULT state <=",
                 "STOP": "=> All VRRP group instances are now stopping <="}


@dataclass(frozen=True, slots=True)
class Mail:
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class MailSettings:
    """Where alerts go; built from global_defs (`from_global_defs`)."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    helo: str
    timeout: float
    router_id: str
    no_email_faults: bool = False

    @classmethod
    def from_global_defs(cls, defs: GlobalDefs,
                         host_name: str | None = None) -> MailSettings | None:
        """None when no mail can be sent: no notification_email or no smtp_server."""
        if not defs.notification_email or defs.smtp_server is None:
            return None
        name = host_name if host_name is not None else socket.gethostname()
        return cls(host=defs.smtp_server.host, port=defs.smtp_server.port,
                   sender=defs.notification_email_from or f"keepalived@{name}",
                   recipients=tuple(defs.notification_email),
                   helo=defs.smtp_helo_name or name, timeout=defs.smtp_connect_timeout,
                   router_id=defs.router_id or name, no_email_faults=defs.no_email_faults)


# ------------------------------------------------------------------ composing


def real_server_mail(router_id: str, vs: VirtualServer, rs: RealServer, up: bool,
                     check: str | None) -> Mail:
    label = _CHECK_LABELS.get(check or "", "CHECK")
    verdict = "succeed" if up else "failed"
    return Mail(f"[{router_id}] Realserver {real_server_text(vs, rs)} of virtual server "
                f"{virtual_server_text(vs)} - {'UP' if up else 'DOWN'}",
                f"=> {label} {verdict} on service <=")


def quorum_mail(router_id: str, vs: VirtualServer, change: QuorumChanged) -> Mail:
    if change.stopping:
        body = "=> Shutting down <="
    else:
        what = ("Starting with quorum up" if change.starting else "Gained quorum") \
            if change.up else \
            ("Starting with quorum down" if change.starting else "Lost quorum")
        body = (f"=> {what} {vs.quorum}+{vs.hysteresis}={change.threshold} <= "
                f"{change.weight_sum} <=")
    return Mail(f"[{router_id}] Virtualserver {virtual_server_text(vs)} - "
                f"{'UP' if change.up else 'DOWN'}", body)


def vrrp_mail(router_id: str, kind: str, name: str, state: str) -> Mail | None:
    """An instance's (`kind` "instance") or sync group's ("group") new state; None for
    a state keepalived sends no mail for (INIT)."""
    subject = _VRRP_SUBJECTS.get(state)
    if subject is None:
        return None
    what, bodies = ("VRRP Group", _GROUP_BODIES) if kind == "group" else \
        ("VRRP Instance", _INSTANCE_BODIES)
    return Mail(f"[{router_id}] {what} {name} - {subject}", bodies[state])


def message_text(settings: MailSettings, mail: Mail, date: str | None = None) -> str:
    """The DATA of the mail, headers as keepalived writes them."""
    date = date if date is not None else email.utils.formatdate(localtime=True)
    return (f"Date: {date}\r\nFrom: {settings.sender}\r\nSubject: {mail.subject}\r\n"
            f"X-Mailer: Keepalived\r\nTo: {', '.join(settings.recipients)}\r\n\r\n"
            f"{mail.body}\r\n")


# ------------------------------------------------------------------ policy


def vrrp_mail_wanted(enabled: bool, state: str, last_mailed: str | None,
                     no_email_faults: bool) -> bool:
    """keepalived's vrrp_smtp_notifier rule."""
    if not enabled or state == last_mailed:
        return False
    return not (no_email_faults and state == "FAULT")


# ------------------------------------------------------------------ sending


def log_instead_of_sending(settings: MailSettings, mail: Mail) -> None:
    """`--dry-run`'s delivery: the mail that would go out, in the log."""
    log.info("dry-run: would mail %s via %s:%d: %s", ", ".join(settings.recipients),
             settings.host, settings.port, mail.subject)


def send_with_smtplib(settings: MailSettings, mail: Mail) -> None:
    with smtplib.SMTP(settings.host, settings.port, local_hostname=settings.helo,
                      timeout=settings.timeout) as smtp:
        smtp.helo(settings.helo)  # HELO, as keepalived (sendmail would say EHLO)
        smtp.sendmail(settings.sender, list(settings.recipients),
                      message_text(settings, mail).encode("utf-8"))


class MailSender:
    """A queue and the one thread that empties it. `send` never blocks."""

    def __init__(self, settings: MailSettings, *,
                 deliver: Callable[[MailSettings, Mail], None] = send_with_smtplib,
                 max_queued: int = MAX_QUEUED) -> None:
        self.settings = settings
        self._deliver = deliver
        self._queue: queue.Queue[Mail | None] = queue.Queue(max_queued)
        self._failing = False
        self._dropping = False
        self.sent = 0
        self._thread = threading.Thread(target=self._work, name="smtp alerts", daemon=True)
        self._thread.start()

    def send(self, mail: Mail) -> None:
        try:
            self._queue.put_nowait(mail)
        except queue.Full:
            if not self._dropping:
                self._dropping = True
                log.error("smtp_alert: %d mails waiting for %s; dropping the newest",
                          self._queue.maxsize, self._where())
            return
        self._dropping = False

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Send what is queued (for `timeout` seconds at most), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _where(self) -> str:
        host = self.settings.host
        return f"[{host}]:{self.settings.port}" if ":" in host else \
            f"{host}:{self.settings.port}"

    def _work(self) -> None:
        while True:
            mail = self._queue.get()
            if mail is None:
                return
            try:
                self._deliver(self.settings, mail)
            except (OSError, smtplib.SMTPException) as error:
                if not self._failing:
                    self._failing = True
                    log.error("smtp_alert: cannot send %r to %s: %s (further failures "
                              "are not logged until a mail gets through)", mail.subject,
                              self._where(), error or type(error).__name__)
                continue
            except Exception:  # a bug must not end the thread: alerts would stop for good
                log.exception("smtp_alert: cannot send %r", mail.subject)
                continue
            self.sent += 1
            if self._failing:
                self._failing = False
                log.info("smtp_alert: mails reach %s again", self._where())
            log.info("smtp_alert: sent %r", mail.subject)


class SmtpAlerts:
    """The alert policy of both children over one `MailSender` (none when mail is not
    configured). `reconfigure` after a reload; `close` at stop."""

    def __init__(self, defs: GlobalDefs, *,
                 deliver: Callable[[MailSettings, Mail], None] = send_with_smtplib) -> None:
        self._deliver = deliver
        self._sender: MailSender | None = None
        self._mailed: dict[tuple[str, str], str] = {}  # (kind, name) -> last state mailed
        self.reconfigure(defs)

    @property
    def settings(self) -> MailSettings | None:
        return self._sender.settings if self._sender is not None else None

    def reconfigure(self, defs: GlobalDefs) -> None:
        settings = MailSettings.from_global_defs(defs)
        if settings == self.settings:
            return
        old, self._sender = self._sender, None
        if old is not None:
            threading.Thread(target=old.close, name="smtp alerts close", daemon=True).start()
        if settings is not None:
            self._sender = MailSender(settings, deliver=self._deliver)

    def real_server(self, vs: VirtualServer, rs: RealServer, up: bool,
                    check: str | None) -> None:
        if self._sender is not None and rs.smtp_alert:
            self._sender.send(real_server_mail(self._sender.settings.router_id, vs, rs, up,
                                               check))

    def quorum(self, vs: VirtualServer, change: QuorumChanged) -> None:
        if self._sender is not None and vs.smtp_alert:
            self._sender.send(quorum_mail(self._sender.settings.router_id, vs, change))

    def vrrp(self, kind: str, name: str, state: str, enabled: bool) -> None:
        sender = self._sender
        if sender is None:
            return
        key = (kind, name)
        if not vrrp_mail_wanted(enabled, state, self._mailed.get(key),
                                sender.settings.no_email_faults):
            return
        mail = vrrp_mail(sender.settings.router_id, kind, name, state)
        if mail is not None:
            self._mailed[key] = state
            sender.send(mail)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        if self._sender is not None:
            self._sender.close(timeout)
