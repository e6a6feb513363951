"""vrrp.notify: keepalived's notify argv and FIFO lines, the FIFO writer (never blocks,
never raises) and the Notifier with a fake runner."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from vrrp.notify import (
    STOP_TIMEOUT,
    FifoWriter,
    Notification,
    Notifier,
    NotifyCommand,
    NotifyState,
    fifo_line,
    fifo_script_command,
    group_transition,
    instance_transition,
    priority_change,
    removed,
    removed_state,
    rx_lower_priority,
)
from vrrp.spec import NotifyScript, SyncGroup, VrrpInstance


def script(*argv: str, user: str | None = None) -> NotifyScript:
    return NotifyScript(command=argv, user=user)


VI_1 = VrrpInstance(
    name="VI_1", priority=100,
    notify_master=script("/bin/rec", "master", "x"), notify_backup=script("/bin/rec", "backup"),
    notify_fault=script("/bin/rec", "fault"), notify_stop=script("/bin/rec", "stop"),
    notify=script("/bin/rec", "notify", user="nobody"),
    notify_master_rx_lower_pri=script("/bin/rec", "lower"), notify_priority_changes=True)
G1 = SyncGroup(name="G1", group=("VI_1", "VI_2"), notify_master=script("/bin/rec", "gmaster"),
               notify=script("/bin/rec", "gnotify"))


def test_fifo_lines() -> None:
    assert fifo_line("INSTANCE", "VI_1", "MASTER", 100) == 'INSTANCE "VI_1" MASTER 100\n'
    assert fifo_line("GROUP", "G1", NotifyState.FAULT, 0) == 'GROUP "G1" FAULT 0\n'
    assert fifo_line("INSTANCE", "VI_1", "master_rx_lower_pri", 90) == \
        'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 90\n'
    with pytest.raises(ValueError):
        fifo_line("INSTANCE", "VI_1", "GOTO_MASTER", 1)


def test_instance_transition() -> None:
    got = instance_transition(VI_1, "MASTER", 100)
    assert [c.argv for c in got.commands] == [
        ("/bin/rec", "master", "x"),
        ("/bin/rec", "notify", "INSTANCE", "VI_1", "MASTER", "100")]
    assert got.commands[1].user == "nobody" and got.commands[0].wait is None
    assert got.fifo_lines == ('INSTANCE "VI_1" MASTER 100\n',)


def test_stop_scripts_are_waited_for() -> None:
    got = instance_transition(VI_1, NotifyState.STOP, 105)
    assert [c.wait for c in got.commands] == [STOP_TIMEOUT, STOP_TIMEOUT]
    assert got.commands[1].argv[-2:] == ("STOP", "105")


def test_only_notify_when_no_state_script() -> None:
    instance = VrrpInstance(name="VI_2", notify=script("/bin/n"))
    got = instance_transition(instance, "BACKUP", 90)
    assert [c.argv for c in got.commands] == [("/bin/n", "INSTANCE", "VI_2", "BACKUP", "90")]
    assert instance_transition(VrrpInstance(name="VI_3"), "FAULT", 1).commands == ()


def test_group_transition_has_priority_zero() -> None:
    got = group_transition(G1, "MASTER")
    assert [c.argv for c in got.commands] == [
        ("/bin/rec", "gmaster"), ("/bin/rec", "gnotify", "GROUP", "G1", "MASTER", "0")]
    assert got.fifo_lines == ('GROUP "G1" MASTER 0\n',)
    assert [c.argv for c in group_transition(G1, "BACKUP").commands] == [
        ("/bin/rec", "gnotify", "GROUP", "G1", "BACKUP", "0")]


def test_a_member_already_in_its_groups_state_stays_quiet() -> None:
    assert instance_transition(VI_1, "MASTER", 100, group_state="MASTER", first=False).empty
    assert not instance_transition(VI_1, "MASTER", 100, group_state="MASTER").empty
    assert not instance_transition(VI_1, "MASTER", 100, group_state="BACKUP",
                                   first=False).empty


def test_rx_lower_priority_and_priority_changes() -> None:
    got = rx_lower_priority(VI_1, 100)
    assert [c.argv for c in got.commands] == [("/bin/rec", "lower")]
    assert got.fifo_lines == ('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\n',)
    assert priority_change(VI_1, "MASTER", 90).fifo_lines == (
        'INSTANCE "VI_1" MASTER_PRIORITY 90\n',)
    assert priority_change(VI_1, "FAULT", 90).fifo_lines == (
        'INSTANCE "VI_1" BACKUP_PRIORITY 90\n',)
    assert priority_change(VrrpInstance(name="x"), "MASTER", 9).empty
    assert not priority_change(VrrpInstance(name="x"), "MASTER", 9, enabled=True).empty


def test_removed_on_reload() -> None:
    assert removed_state(VI_1) is NotifyState.FAULT
    assert removed(VI_1, 100).fifo_lines == ('INSTANCE "VI_1" FAULT 100\n',)
    deleted = VrrpInstance(name="VI_4", notify_deleted=True,
                           notify_deleted_script=script("/bin/del"), notify=script("/bin/n"))
    got = removed(deleted, 50)
    assert [c.argv for c in got.commands] == [
        ("/bin/del",), ("/bin/n", "INSTANCE", "VI_4", "DELETED", "50")]
    assert got.fifo_lines == ('INSTANCE "VI_4" DELETED 50\n',)


def test_fifo_script_command() -> None:
    got = fifo_script_command(script("/bin/reader", "-v", user="nobody"), "/run/fifo")
    assert got.argv == ("/bin/reader", "-v", "/run/fifo") and got.user == "nobody"


# ----------------------------------------------------------------- FIFO writer


def test_fifo_without_reader_drops_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    writer = FifoWriter(path, create=True)
    assert path.is_fifo() and writer.created
    assert writer.write('INSTANCE "VI_1" MASTER 100\n') is False
    assert (writer.written, writer.dropped) == (0, 1)
    writer.close()
    assert not path.exists()  # we made it, we remove it


def test_fifo_with_reader_and_reader_gone(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer = FifoWriter(path)
    assert writer.write('GROUP "G1" MASTER 0\n')
    assert writer.write(b'INSTANCE "VI_1" MASTER 100\n')
    assert os.read(reader, 4096) == b'GROUP "G1" MASTER 0\nINSTANCE "VI_1" MASTER 100\n'
    os.close(reader)
    assert writer.write("lost\n") is False  # EPIPE: dropped, no SIGPIPE death
    assert (writer.written, writer.dropped) == (2, 1)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    assert writer.write("again\n")  # reopened
    assert os.read(reader, 4096) == b"again\n"
    os.close(reader)
    writer.close()
    assert path.exists()  # not ours to remove


def test_fifo_full_pipe_drops(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer = FifoWriter(path)
    line = "x" * 1000 + "\n"
    results = [writer.write(line) for _ in range(200)]  # > 64 KiB pipe buffer
    assert results[0] and not results[-1] and writer.dropped > 0
    os.close(reader)
    writer.close()


def test_fifo_path_problems_never_raise(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert FifoWriter(plain).write("x\n") is False
    missing = FifoWriter(tmp_path / "none" / "fifo", create=True)
    assert missing.write("x\n") is False and missing.dropped == 1


# ----------------------------------------------------------------- notifier


async def test_notifier_runs_commands_and_writes_lines(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    ran: list[tuple[tuple[str, ...], float, str | None, str | None]] = []

    async def run(argv, timeout, user, group):
        ran.append((argv, timeout, user, group))
        return None if "STOP" in argv else 0

    notifier = Notifier(run, [FifoWriter(path)], timeout=30)
    notifier.send(instance_transition(VI_1, "MASTER", 100) + group_transition(G1, "MASTER"))
    notifier.send(instance_transition(VI_1, "STOP", 100))
    await notifier.close(timeout=5)
    assert ran[0] == (("/bin/rec", "master", "x"), 30, None, None)
    assert ran[1] == (("/bin/rec", "notify", "INSTANCE", "VI_1", "MASTER", "100"), 30,
                      "nobody", None)
    assert ran[-1][1] == STOP_TIMEOUT
    assert notifier.launched == 6 and notifier.failed == 1
    assert os.read(reader, 4096).decode().splitlines() == [
        'INSTANCE "VI_1" MASTER 100', 'GROUP "G1" MASTER 0', 'INSTANCE "VI_1" STOP 100']
    os.close(reader)


async def test_notifier_survives_a_raising_runner_and_cancels_at_close() -> None:
    async def run(argv, timeout, user, group):
        if argv[0] == "/bin/hang":
            await asyncio.sleep(60)
        raise OSError("cannot")

    notifier = Notifier(run)
    notifier.send(Notification((NotifyCommand(("/bin/boom",)),
                                NotifyCommand(("/bin/hang",)))))
    await asyncio.sleep(0.01)
    assert notifier.failed == 1 and notifier.running == 1
    await notifier.close(timeout=0.05)
    assert notifier.running == 0


def test_notifier_without_a_loop_refuses_quietly() -> None:
    async def run(argv, timeout, user, group):
        return 0

    notifier = Notifier(run)
    notifier.launch(NotifyCommand(("/bin/x",)))
    assert notifier.refused == 1
