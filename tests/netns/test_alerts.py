"""The supervised children as the supervisor starts them (`--supervised`), with a mail
server (aiosmtpd) in its own namespace:

- checkers child: a real server that stops and comes back sends two mails (DOWN, UP)
  with keepalived's subjects to every notification_email, runs its notify_down and
  notify_up, and writes keepalived's RS/VS lines to lvs_notify_fifo; each change is an
  event line; status.json says running, its pid, and the record of each reload (refused,
  then applied with its IPVS operations); no director.pid of its own;
- VRRP child: becoming MASTER sends one mail, runs notify_master and writes
  keepalived's line to the notify FIFO; vrrp-status.json has its pid, running, and
  the reload record.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

from tests.netns.lab import Lab, Node, Process, logged, wait_until

ROOT = Path(__file__).resolve().parents[2]
VIP = "203.0.113.10"
ENV = {"PYTHONPATH": str(ROOT)}

SINK = textwrap.dedent("""
    import asyncio, json, sys
    from aiosmtpd.smtp import SMTP

    host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            with open(out, "a") as f:
                f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                    "helo": session.host_name,
                                    "data": envelope.content.decode()}) + "\\n")
            return "250 OK"

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Sink(), hostname="mail"), host, port)
        print("listening", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


def mail_server(lab: Lab, node: Node, tmp_path: Path) -> Path:
    script = tmp_path / "sink.py"
    script.write_text(SINK)
    received = tmp_path / "mails.jsonl"
    proc = lab.spawn(node.ns, sys.executable, script, str(node.ipv4.ip), "25", received,
                     log=lab.workdir / "sink.log")
    wait_until(lambda: "listening" in proc.output(), 10, message="the SMTP sink listens")
    return received


def mails(received: Path) -> list[dict]:
    if not received.exists():
        return []
    return [json.loads(line) for line in received.read_text().splitlines()]


def subject(mail: dict) -> str:
    for line in mail["data"].splitlines():
        if line.startswith("Subject: "):
            return line[len("Subject: "):]
    raise AssertionError(f"no Subject in {mail['data']!r}")


def global_defs(mail: Node, extra: str = "") -> str:
    return f"""
global_defs {{
    router_id lb-a
    notification_email {{
        ops@example.org
        oncall@example.org
    }}
    notification_email_from director@example.org
    smtp_server {mail.ipv4.ip}
    smtp_helo_name lb-a.example.org
    smtp_connect_timeout 3
    script_user root
    {extra}
}}
"""


def child(lab: Lab, node: Node, role: str, conf: Path, state: Path,
          *extra: str) -> Process:
    """A child as the supervisor starts it."""
    return lab.spawn(node.ns, sys.executable, "-m", "director.cli.main", "run", "-f", conf,
                     f"--{role}-only", "--supervised", "--state-dir", state, *extra,
                     log=lab.workdir / f"{role}.log", env=ENV)


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_checkers_child_mails_a_real_server_down_and_up(lab: Lab, tmp_path: Path):
    director, rs1, mail = lab.add_node("director"), lab.add_node("rs1"), lab.add_node("mail")
    received = mail_server(lab, mail, tmp_path)
    address = str(rs1.ipv4.ip)

    def serve() -> Process:
        return lab.spawn(rs1.ns, sys.executable, "-m", "http.server", "80", "--bind",
                         address, log=lab.workdir / "http.log")

    fifo = tmp_path / "lvs.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # before the writer opens it
    lines: list[str] = []
    for name, status in (("down", 3), ("up", 0)):  # notify_down's failure is logged
        script = tmp_path / f"{name}.sh"
        script.write_text(f"#!/bin/sh\ntouch {tmp_path}/{name}\nexit {status}\n")
        script.chmod(0o755)

    def fifo_lines() -> list[str]:
        with contextlib.suppress(BlockingIOError):
            lines.extend(os.read(reader, 4096).decode().splitlines())
        return lines

    def config(weight: int = 1) -> str:
        return global_defs(mail, f"lvs_notify_fifo {fifo}") + f"""
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server {address} 80 {{
        weight {weight}
        notify_down {tmp_path}/down.sh
        notify_up {tmp_path}/up.sh
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}
}}
"""

    http = serve()
    conf, state = tmp_path / "keepalived.conf", tmp_path / "state"
    conf.write_text(config())
    proc = child(lab, director, "checkers", conf, state, "--memory-ipvs")
    logged(proc, f"[checkers] dry-run: ipvs: add real server {address}:80")
    status = state / "status.json"
    wait_until(lambda: read_json(status).get("pid") == proc.pid, 5, message="status.json")
    first = read_json(status)
    assert first["running"] is True
    assert first["reload"]["count"] == 0
    assert not (state / "director.pid").exists()  # the supervisor's, not the child's

    def notify_down_failed(text: str) -> str:
        line = text.splitlines().index(f"        notify_down {tmp_path}/down.sh") + 1
        return f"notify script '{tmp_path}/down.sh' ({conf}:{line}:"

    http.stop()
    wait_until(lambda: len(mails(received)) >= 1, 10, message="the DOWN mail")
    wait_until(lambda: (tmp_path / "down").exists(), 5, message="notify_down ran")
    logged(proc, notify_down_failed(config()))
    assert not (tmp_path / "up").exists()
    http = serve()
    wait_until(lambda: len(mails(received)) >= 2, 10, message="the UP mail")
    wait_until(lambda: (tmp_path / "up").exists(), 5, message="notify_up ran")
    rs_vs = f"[{address}]:tcp:80 [{VIP}]:tcp:80"
    wait_until(lambda: len(fifo_lines()) >= 4, 5, message="the FIFO lines")
    # keepalived's checker lines: the server, then its virtual server's quorum
    assert lines[:4] == [f"RS {rs_vs} DOWN", f"VS [{VIP}]:tcp:80 DOWN",
                         f"RS {rs_vs} UP", f"VS [{VIP}]:tcp:80 UP"]
    got = mails(received)
    where = f"[{address}]:tcp:80 of virtual server [{VIP}]:tcp:80"
    assert [subject(m) for m in got] == [f"[lb-a] Realserver {where} - DOWN",
                                         f"[lb-a] Realserver {where} - UP"]
    for m in got:
        assert m["from"] == "director@example.org"
        assert m["to"] == ["ops@example.org", "oncall@example.org"]
        assert m["helo"] == "lb-a.example.org"
        assert "To: ops@example.org, oncall@example.org" in m["data"]
    assert "=> TCP CHECK failed on service <=" in got[0]["data"]
    out = proc.output()
    assert (f"event=real_server_down virtual_server=[{VIP}]:TCP:80 address={address} "
            f"port=80 check=TCP_CHECK") in out
    assert f"event=real_server_up virtual_server=[{VIP}]:TCP:80 address={address}" in out

    # a refused reload, then an applied one: both in status.json's record
    conf.write_text(config().replace("lb_algo wrr", "lb_algo nosuch"))
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: read_json(status).get("reload", {}).get("count") == 1, 10,
               message="the refused reload's record")
    record = read_json(status)["reload"]
    assert record["ok"] is False
    assert any("unknown scheduler 'nosuch'" in p for p in record["problems"])
    conf.write_text(config(weight=3))
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: read_json(status).get("reload", {}).get("count") == 2, 10,
               message="the applied reload's record")
    record = read_json(status)["reload"]
    assert record["ok"] is True and record["problems"] == []
    assert record["operations"] == 1  # the weight edit
    assert 0 < record["load_seconds"] <= record["seconds"] < 5
    assert "event=reload_refused role=checkers problems=1" in proc.output()
    assert "event=reload_ok role=checkers" in proc.output()

    # lines added above the virtual server: the reload reuses it as it was and gives it
    # its new lines afterwards; messages then name those
    moved = config(weight=3).replace("\nvirtual_server", "# one\n# two\n\nvirtual_server")
    conf.write_text(moved)
    proc.send_signal(signal.SIGHUP)
    logged(proc, "the virtual servers that moved take their new lines")
    record = read_json(state / "checkers-reload.json")["reload"]
    assert record["count"] == 3 and record["ok"] is True and record["operations"] == 0
    http.stop()
    logged(proc, notify_down_failed(moved))

    assert proc.stop(signal.SIGTERM, timeout=10) == 0, proc.output()
    os.close(reader)
    assert read_json(status)["running"] is False
    assert "Traceback" not in proc.output()


def test_vrrp_child_mails_master_once_and_writes_the_fifo(lab: Lab, tmp_path: Path):
    director, mail = lab.add_node("director"), lab.add_node("mail")
    received = mail_server(lab, mail, tmp_path)
    fifo = tmp_path / "notify.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # before the writer opens it
    conf, state = tmp_path / "keepalived.conf", tmp_path / "state"
    conf.write_text(global_defs(mail, f"notify_fifo {fifo}") + f"""
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 0.2
    smtp_alert
    notify_master "/usr/bin/touch {tmp_path}/master"
    virtual_ipaddress {{
        192.0.2.100/24
    }}
}}
""")
    try:
        proc = child(lab, director, "vrrp", conf, state)
        logged(proc, "[vrrp]")
        wait_until(lambda: any("MASTER" in subject(m) for m in mails(received)), 15,
                   message="the MASTER mail")
        lines: list[str] = []

        def fifo_says_master() -> bool:
            with contextlib.suppress(BlockingIOError):
                lines.extend(os.read(reader, 4096).decode().splitlines())
            return 'INSTANCE "VI_1" MASTER 100' in lines

        wait_until(fifo_says_master, 5, message="the FIFO line")
        wait_until(lambda: (tmp_path / "master").exists(), 5, message="notify_master ran")
        status = read_json(state / "vrrp-status.json")
        assert status["pid"] == proc.pid and status["running"] is True
        assert status["reload"]["count"] == 0
        assert "event=vrrp_transition kind=instance name=VI_1 old=BACKUP new=MASTER" \
            in proc.output()
        assert proc.stop(signal.SIGTERM, timeout=10) == 0, proc.output()
    finally:
        os.close(reader)
    masters = [m for m in mails(received) if subject(m).endswith("Entering MASTER state")]
    assert [subject(m) for m in masters] == ["[lb-a] VRRP Instance VI_1 - Entering MASTER state"]
    assert "=> VRRP Instance is now owning VRRP VIPs <=" in masters[0]["data"]
    assert read_json(state / "vrrp-status.json")["running"] is False
    assert "Traceback" not in proc.output()
