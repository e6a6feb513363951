"""The sync-daemon request as bytes: the attributes the kernel's policy wants
(ip_vs_ctl.c), whatever pyroute2 message classes were used before."""

from __future__ import annotations

import struct

from pyroute2.netlink.generic import ipvs as genl_ipvs

from director.ipvs import netlink_sync


def nla(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_a_daemon_request_is_typed_even_after_pyroute2_used_its_own_ipvs_message() -> None:
    # pyroute2 compiles a message class's attribute table once; its own ipvsmsg types
    # the daemon attribute as opaque bytes. Using it first must not change ours.
    used = genl_ipvs.ipvsmsg()
    used["cmd"], used["version"] = genl_ipvs.IPVS_CMD_GET_DAEMON, 1
    used["attrs"] = [("IPVS_CMD_ATTR_DAEMON", "00")]
    used.encode()

    msg = netlink_sync._request(genl_ipvs.IPVS_CMD_NEW_DAEMON)
    msg["attrs"] = [("IPVS_CMD_ATTR_DAEMON", {"attrs": [
        ("IPVS_DAEMON_ATTR_STATE", 1), ("IPVS_DAEMON_ATTR_MCAST_IFN", "sync0"),
        ("IPVS_DAEMON_ATTR_SYNC_ID", 7), ("IPVS_DAEMON_ATTR_MCAST_PORT", 8848)]})]
    msg.encode()

    daemon = (nla(1, struct.pack("=I", 1)) + nla(2, b"sync0\0") + nla(3, struct.pack("=I", 7))
              + nla(7, struct.pack("=H", 8848)))
    body = struct.pack("=BBH", genl_ipvs.IPVS_CMD_NEW_DAEMON, 1, 0) + nla(3, daemon)
    assert bytes(msg.data)[16:] == body
