"""`director.ipvs.connections`: /proc/net/ip_vs_conn in, ipvsadm -L -c text out.

The texts are captured from a UML guest (kernel 6.1, ipvsadm 1.31): the kernel's file,
then `ipvsadm -Lnc` and `ipvsadm -Lc` (with the names below in /etc/hosts) at the same
moment. tests/kernel/test_lvsadm.py compares with ipvsadm live.
"""

from __future__ import annotations

import ipaddress

import pytest

from director.ipvs.connections import (
    Connection,
    ConnectionTableError,
    connections_text,
    parse_connections,
    parse_line,
)

PROC = """\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 2001:0db8:0000:0000:0000:0000:0000:0001 9824 2001:0db8:0000:0000:0000:0000:0000:0010 \
0050 2001:0db8:0000:0000:0000:0000:0000:0010 1F90 CLOSE             8
TCP C0000201 85A0 C000020A 0050 C6336401 1F90 CLOSE_WAIT       57
TCP C0000201 B59C C000020A 0016 C6336401 1F90 CLOSE_WAIT       58
TCP C0000201 85AE C000020A 0050 C000020A 1F90 CLOSE_WAIT       58
TCP C0000201 0000 C000020A 0016 C6336401 1F90 ASSURED          58
UDP C0000201 AAC3 C000020A 0035 C6336401 0035 UDP             298
"""

NUMERIC = """\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:08  CLOSE       [2001:db8::1]:38948 [2001:db8::10]:80  [2001:db8::10]:8080
TCP 00:57  CLOSE_WAIT  192.0.2.1:34208    192.0.2.10:80      198.51.100.1:8080
TCP 00:58  CLOSE_WAIT  192.0.2.1:46492    192.0.2.10:22      198.51.100.1:8080
TCP 00:58  CLOSE_WAIT  192.0.2.1:34222    192.0.2.10:80      192.0.2.10:8080
TCP 00:58  ASSURED     192.0.2.1:0        192.0.2.10:22      198.51.100.1:8080
UDP 04:58  UDP         192.0.2.1:43715    192.0.2.10:53      198.51.100.1:53
"""

NAMED = """\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:08  CLOSE       [2001:db8::1]:38948 [v6dir.example]:http [v6dir.example]:http-alt
TCP 00:57  CLOSE_WAIT  192.0.2.1:34208    director.example:http \
a-very-long-host-name-for-testing.example.org:http-alt
TCP 00:58  CLOSE_WAIT  192.0.2.1:46492    director.example:ssh \
a-very-long-host-name-for-testing.example.org:http-alt
TCP 00:58  CLOSE_WAIT  192.0.2.1:34222    director.example:http director.example:http-alt
TCP 00:58  ASSURED     192.0.2.1:0        director.example:ssh \
a-very-long-host-name-for-testing.example.org:http-alt
UDP 04:58  UDP         192.0.2.1:43715    director.example:domain \
a-very-long-host-name-for-testing.example.org:domain
"""

PERSISTENT_TITLE = (
    "IPVS connection entries\n"
    "pro expire state       source             virtual            destination        "
    "pe name          pe_data\n")


class FakeNames:
    HOSTS = {"192.0.2.10": "director.example", "2001:db8::10": "v6dir.example",
             "198.51.100.1": "a-very-long-host-name-for-testing.example.org"}
    SERVICES = {(80, "tcp"): "http", (8080, "tcp"): "http-alt", (22, "tcp"): "ssh",
                (53, "tcp"): "domain", (53, "udp"): "domain", (5060, "udp"): "sip"}

    def host(self, address):
        return self.HOSTS.get(str(address))

    def service(self, port, protocol):
        return self.SERVICES.get((port, protocol))


def test_parse_every_field():
    conns = parse_connections(PROC)
    assert len(conns) == 6
    assert conns[0] == Connection(
        protocol="TCP", client=ipaddress.ip_address("2001:db8::1"), client_port=0x9824,
        virtual=ipaddress.ip_address("2001:db8::10"), virtual_port=80,
        destination=ipaddress.ip_address("2001:db8::10"), destination_port=8080,
        state="CLOSE", expires=8)
    template = conns[4]
    assert (str(template.client), template.client_port, template.state) == (
        "192.0.2.1", 0, "ASSURED")
    assert (conns[5].protocol, conns[5].expires, conns[5].expire_text) == ("UDP", 298, "04:58")


def test_numeric_text_is_ipvsadms():
    assert connections_text(parse_connections(PROC)) == NUMERIC


def test_named_text_is_ipvsadms():
    assert connections_text(parse_connections(PROC), names=FakeNames()) == NAMED


def test_persistent_conn_adds_engine_columns_only_to_entries_that_have_them():
    text = connections_text(parse_connections(PROC), persistent_conn=True)
    assert text == PERSISTENT_TITLE + NUMERIC.split("\n", 2)[2]
    # (constructed from ipvsadm's format: the kernel appends " sip CALLID")
    sip = parse_line("UDP C0000201 13C4 C000020A 13C4 C6336401 13C4 UDP             179 "
                     "sip 1234@client")
    assert (sip.pe_name, sip.pe_data) == ("sip", "1234@client")
    assert connections_text([sip], persistent_conn=True) == PERSISTENT_TITLE + (
        "UDP 02:59  UDP         192.0.2.1:5060     192.0.2.10:5060    198.51.100.1:5060 "
        "sip                1234@client\n")
    assert connections_text([sip], persistent_conn=True, names=FakeNames()).endswith(
        "UDP 02:59  UDP         192.0.2.1:sip      director.example:sip "
        "a-very-long-host-name-for-testing.example.org:sip sip                1234@client\n")
    assert connections_text([sip]).endswith("198.51.100.1:5060\n")


def test_empty_table_and_long_expiry():
    assert connections_text(parse_connections(PROC.splitlines()[0] + "\n")) == (
        NUMERIC.split("\n", 2)[0] + "\n" + NUMERIC.split("\n", 2)[1] + "\n")
    conn = parse_line("TCP C0000201 0050 C000020A 0050 C000020A 0050 ESTABLISHED  900000")
    assert conn.expire_text == "15000:00"


def test_fwmark_template_keeps_port_numbers():
    conn = parse_line("IP  C0000201 0000 00000005 0050 C6336401 0050 NONE            300")
    assert str(conn.virtual) == "0.0.0.5"
    text = connections_text([conn], names=FakeNames())
    assert text.endswith("IP  05:00  NONE        192.0.2.1:0        0.0.0.5:80         "
                         "a-very-long-host-name-for-testing.example.org:80\n")


def test_mixed_family_destination():
    conn = parse_line("TCP 2001:0db8:0000:0000:0000:0000:0000:0001 9824 "
                      "2001:0db8:0000:0000:0000:0000:0000:0010 0050 C6336401 0050 "
                      "ESTABLISHED     900")
    assert str(conn.destination) == "198.51.100.1"


@pytest.mark.parametrize("text", [
    "",
    "garbage\n",
    PROC.splitlines()[0] + "\nTCP C0000201 85A0 C000020A\n",
    PROC.splitlines()[0] + "\nTCP C00002 85A0 C000020A 0050 C6336401 1F90 CLOSE 5\n",
    PROC.splitlines()[0] + "\nTCP C0000201 XYZ C000020A 0050 C6336401 1F90 CLOSE 5\n",
    PROC.splitlines()[0] + "\nTCP C0000201 0050 C000020A 0050 C6336401 1F90 CLOSE soon\n",
    PROC.splitlines()[0] + "\nTCP 2001:db8:::zz 0050 C000020A 0050 C6336401 1F90 CLOSE 5\n",
])
def test_malformed_lines_are_refused_with_their_place(text):
    with pytest.raises(ConnectionTableError) as failure:
        parse_connections(text)
    assert "/proc/net/ip_vs_conn" in str(failure.value)
