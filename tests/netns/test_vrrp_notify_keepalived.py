"""Our tracking, sync group and notify builders against a real keepalived 2.2.7.

keepalived runs two instances in a sync group, VI_1 tracking a file (weight -1) with
notify scripts, notify_priority_changes and a vrrp_notify_fifo; the test walks the
file through values that move VI_1's priority and put it in FAULT and back, then
stops keepalived. For each step our side computes the same thing from the same
config (`Tracker` for the priority and fault, `sync_transition` for the group, the
`vrrp.notify` builders for lines and argv), and the FIFO lines and the scripts'
arguments must be the ones keepalived produced. Lines are compared per step as
multisets: which member's master-down timer fires first is not deterministic.
"""

from __future__ import annotations

import collections
import os
import signal

from director.config.keepalived import load_keepalived
from tests.netns.keepalived_peer import GLOBAL_DEFS, KeepalivedFactory
from tests.netns.lab import Lab, wait_until
from vrrp.notify import (
    Notification,
    group_transition,
    instance_transition,
    priority_change,
)
from vrrp.spec import VrrpConfig
from vrrp.track import State, SyncMember, Tracker, sync_transition

CONF = """
track_file tf {{
    file "{tf}"
    weight -1
}}
vrrp_sync_group G1 {{
    group {{
        VI_1
        VI_2
    }}
    notify_master "{rec} gmaster"
    notify_backup "{rec} gbackup"
    notify_fault "{rec} gfault"
    notify_stop "{rec} gstop"
    notify "{rec} gnotify"
    sync_group_tracking_weight
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    version 3
    advert_int 0.1
    notify_master "{rec} master x"
    notify_backup "{rec} backup"
    notify_fault "{rec} fault"
    notify_stop "{rec} stop"
    notify "{rec} notify"
    notify_priority_changes
    track_file {{
        tf
    }}
    virtual_ipaddress {{
        192.0.2.50/24
    }}
}}
vrrp_instance VI_2 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority 100
    version 3
    advert_int 0.1
    virtual_ipaddress {{
        192.0.2.51/24
    }}
}}
"""

# A notify script that logs its arguments, one call per line: [a][b]...
# (one write per call: scripts run concurrently)
RECORDER = ('#!/bin/sh\nline=""\nfor a in "$@"; do line="$line[$a]"; done\n'
            'echo "$line" >> {log}\n')


class OurSide:
    """What our pieces say for the same config and events: FIFO lines and argv."""

    def __init__(self, config: VrrpConfig):
        self.config = config
        self.group = config.sync_groups[0]
        self.tracker = Tracker.for_instance(config, "VI_1")
        self.tracker.link("eth0", True, 0.0)
        self.priority = {"VI_1": self.tracker.effective.priority, "VI_2": 100}
        self.states = {"VI_1": State.INIT, "VI_2": State.INIT}
        self.group_state = State.INIT
        self.out = Notification()

    def _instance(self, name: str, state: State) -> None:
        self.states[name] = state
        instance = self.config.instance(name)
        assert instance is not None
        self.out += instance_transition(instance, state, self.priority[name])

    def move(self, name: str, to: State, *, wants_master: bool = True) -> None:
        members = {n: SyncMember(s, wants_master=wants_master,
                                 fault=n == "VI_1" and self.tracker.effective.fault)
                   for n, s in self.states.items()}
        decision = sync_transition(self.group_state, members, name, to)
        assert decision.state is to, decision
        self._instance(name, decision.state)
        for other, state in decision.others:
            self._instance(other, state)
        if decision.group_state is not None:
            self.group_state = decision.group_state
            self.out += group_transition(self.group, decision.group_state)

    def start(self) -> None:
        self.group_state = State.BACKUP  # keepalived: the group's BACKUP line first
        self.out += group_transition(self.group, State.BACKUP)
        for name in self.states:
            self._instance(name, State.BACKUP)
        self.move("VI_2", State.MASTER)  # both master-down timers expire

    def file(self, value: int) -> None:
        before = self.tracker.effective
        after = self.tracker.file("tf", value, 0.0)
        if after is None:
            return
        self.priority["VI_1"] = after.priority
        if after.fault and not before.fault:
            self.move("VI_1", State.FAULT)
        elif before.fault and not after.fault:
            self.move("VI_1", State.BACKUP)
            self.move("VI_2", State.MASTER)
        elif after.priority != before.priority:
            instance = self.config.instance("VI_1")
            assert instance is not None
            self.out += priority_change(instance, self.states["VI_1"], after.priority)

    def stop(self) -> None:
        for name in self.states:
            self._instance(name, State.STOP)
        self.out += group_transition(self.group, State.STOP)

    def take(self) -> Notification:
        out, self.out = self.out, Notification()
        return out


def test_fifo_lines_and_notify_arguments_match_keepalived(
        lab: Lab, keepalived: KeepalivedFactory) -> None:
    node = lab.add_node("director")
    work = lab.workdir
    fifo = work / "vrrp.fifo"
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    log = work / "notify.log"
    log.touch()
    recorder = work / "rec.sh"
    recorder.write_text(RECORDER.format(log=log))
    recorder.chmod(0o755)
    tf = work / "tf"
    tf.write_text("0\n")
    conf = work / "keepalived.conf"
    conf.write_text(GLOBAL_DEFS.replace("}\n", f"    vrrp_notify_fifo {fifo}\n}}\n", 1)
                    + CONF.format(tf=tf, rec=recorder))
    config, _problems = load_keepalived(str(conf))
    ours = OurSide(config.vrrp)

    got: list[str] = []
    buffer = b""

    def lines_until(last: str, timeout: float = 15.0) -> list[str]:
        """The FIFO lines keepalived writes up to and including `last`."""
        nonlocal buffer

        def seen() -> bool:
            nonlocal buffer
            try:
                while chunk := os.read(reader, 65536):
                    buffer += chunk
            except BlockingIOError:
                pass
            *complete, buffer = buffer.split(b"\n")
            got.extend(line.decode() + "\n" for line in complete)
            return last in got

        wait_until(seen, timeout, message=f"keepalived writes {last!r}; got {got}")
        step = got[:got.index(last) + 1]
        del got[:len(step)]
        return step

    def set_file(value: str) -> None:
        tmp = work / "tf.tmp"
        tmp.write_text(value)
        tmp.replace(tf)  # IN_MOVED_TO: keepalived reads it now

    def same(step: list[str], expected: Notification) -> None:
        assert collections.Counter(step) == collections.Counter(expected.fifo_lines)

    commands: list[tuple[str, ...]] = []
    try:
        peer = keepalived(node, conf)
        ours.start()
        expected = ours.take()
        commands += [c.argv for c in expected.commands]
        same(lines_until('GROUP "G1" MASTER 0\n'), expected)

        for value, last in ((10, 'INSTANCE "VI_1" MASTER_PRIORITY 90\n'),
                            (254, 'GROUP "G1" FAULT 0\n'),
                            (0, 'GROUP "G1" MASTER 0\n'),
                            (300, 'GROUP "G1" FAULT 0\n'),
                            (-5, 'GROUP "G1" MASTER 0\n')):
            set_file(f"{value}\n")
            ours.file(value)
            expected = ours.take()
            commands += [c.argv for c in expected.commands]
            same(lines_until(last), expected)

        assert peer.stop(signal.SIGTERM) == 0
        ours.stop()
        expected = ours.take()
        commands += [c.argv for c in expected.commands]
        same(lines_until('GROUP "G1" STOP 0\n', 5), expected)
    finally:
        os.close(reader)

    def calls() -> list[tuple[str, ...]]:
        return [tuple(line[1:-1].split("][")) for line in log.read_text().splitlines()]

    wait_until(lambda: len(calls()) >= len(commands), 10,
               message="every notify script has run")
    assert all(c[0] == str(recorder) for c in commands)
    # the recorder logs its arguments, not its own path
    assert collections.Counter(calls()) == collections.Counter(c[1:] for c in commands)

