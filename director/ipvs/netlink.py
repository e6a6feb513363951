"""The kernel's IPVS table through generic netlink.

Reads the whole table with dump requests on a raw generic netlink socket of its own,
the answers decoded by `director.ipvs.genl_codec` (see `_DumpReader`; pyroute2's
`IPVS` socket and parser when no raw socket can be opened). `apply` sends
one `Operation` as one pyroute2 request and waits for its answer; `apply_all` encodes
the requests itself (`director.ipvs.genl_codec`) and sends hundreds per system call on
a raw generic netlink socket of its own (see `_BatchWriter`), with the same results.
Every request carries the full object: the kernel's SET commands replace every
field, so a field left out would be reset, not kept. (pyroute2's "update" command
is a DELETE in 0.9.7 and is never used.)
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pyroute2 import IPVS, IPVSDest, IPVSService
from pyroute2.netlink.exceptions import NetlinkError

from director.ipvs import backend as backend_module
from director.ipvs import genl_codec, netlink_sync
from director.ipvs.backend import Backend, IpvsError
from director.ipvs.genl_codec import DumpedDestination, DumpedService
from director.ipvs.table import (
    ConnectionCounts,
    Counters,
    DestinationKey,
    DestinationSettings,
    Operation,
    OperationKind,
    Service,
    ServiceKey,
    ServiceSettings,
    SyncDaemon,
    SyncState,
    Table,
    Timeouts,
)

# Flag bits and codes are the codec's; the names below decode what the kernel reports.
PERSISTENT, HASHED, ONE_PACKET = genl_codec.PERSISTENT, genl_codec.HASHED, genl_codec.ONE_PACKET
SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3 = (
    genl_codec.SCHED_FLAG_1, genl_codec.SCHED_FLAG_2, genl_codec.SCHED_FLAG_3)
ALL_FLAGS = genl_codec.ALL_FLAGS

_SCHED_FLAG_NAMES = genl_codec.SCHED_FLAG_NAMES
_GENERIC_FLAG_NAMES = genl_codec.GENERIC_FLAG_NAMES
_PROTOCOL_BY_NUMBER = genl_codec.PROTOCOL_BY_NUMBER


# ------------------------------------------------------------------ encoding (pyroute2)
# The field values come from the codec, so both write paths refuse the same requests.

def _service_key_request(key: ServiceKey) -> IPVSService:
    return IPVSService(**genl_codec.service_key_fields(key))


def _service_request(key: ServiceKey, settings: ServiceSettings | None) -> IPVSService:
    return IPVSService(**genl_codec.service_fields(key, settings))


def _destination_request(
    key: DestinationKey, settings: DestinationSettings | None = None
) -> IPVSDest:
    return IPVSDest(**genl_codec.destination_fields(key, settings))


_U16, _U32, _INT = 0xFFFF, 0xFFFFFFFF, 2**31 - 1


def _out_of_range(op: Operation) -> list[str]:
    """'weight -1 is out of range (0-2147483647)' for each number of `op` that no
    netlink field can carry."""
    checks: list[tuple[str, int | None, int, int]] = [
        ("port", op.service.port, _U16, _U16), ("fwmark", op.service.fwmark, _U32, _U32)]
    if op.service_settings is not None:
        checks.append(("persistence timeout", op.service_settings.persistence_timeout,
                       _U32, _U32))
    if op.destination is not None:
        checks.append(("real server port", op.destination.port, _U16, _U16))
    settings = op.destination_settings
    if settings is not None:
        checks += [("weight", settings.weight, _U32, _INT),
                   ("upper threshold", settings.upper_threshold, _U32, _U32),
                   ("lower threshold", settings.lower_threshold, _U32, _U32),
                   ("tunnel port", settings.tunnel_port, _U16, _U16)]
    return [f"{name} {value} is out of range (0-{shown})"
            for name, value, fits, shown in checks
            if value is not None and not 0 <= value <= fits]


def _local_refusal(op: Operation, error: Exception) -> IpvsError:
    """The refusal of a request that never reached the kernel (it could not be built)."""
    if isinstance(error, (struct.error, OverflowError)):
        # A number does not fit its netlink field: say which.
        fields = _out_of_range(op)
        detail = ", ".join(fields) if fields else \
            f"a value does not fit the kernel's field ({error})"
        return IpvsError.refused(op, errno.ERANGE, detail)
    # Refused before asking the kernel, with the errno the kernel gives for a malformed
    # request (as the memory backend does).
    return IpvsError.refused(op, errno.EINVAL, str(error))


# ------------------------------------------------------------------ decoding (pyroute2)
# The fallback when no raw socket can be opened; the values come from the codec's
# functions, so both read paths give the same results.

def _netmask_prefix(family: int, value: str | None) -> int | None:
    """The persistence netmask as a prefix length."""
    if value is None:
        return None
    return genl_codec.netmask_prefix(family, socket.inet_aton(value))


def _service_from_attrs(attrs: Any) -> tuple[ServiceKey, ServiceSettings]:
    family = attrs.get("IPVS_SVC_ATTR_AF")
    fwmark = attrs.get("IPVS_SVC_ATTR_FWMARK") or 0
    if fwmark:
        key = ServiceKey(family=family, fwmark=fwmark)
    else:
        key = ServiceKey(
            family=family,
            protocol=_PROTOCOL_BY_NUMBER.get(attrs.get("IPVS_SVC_ATTR_PROTOCOL")),
            address=ipaddress.ip_address(attrs.get("IPVS_SVC_ATTR_ADDR")),
            port=attrs.get("IPVS_SVC_ATTR_PORT") or 0,
        )
    settings = genl_codec.service_settings(
        family,
        attrs.get("IPVS_SVC_ATTR_SCHED_NAME"),
        (attrs.get("IPVS_SVC_ATTR_FLAGS") or {}).get("flags", 0),
        attrs.get("IPVS_SVC_ATTR_TIMEOUT"),
        _netmask_prefix(family, attrs.get("IPVS_SVC_ATTR_NETMASK")),
        attrs.get("IPVS_SVC_ATTR_PE_NAME"),
    )
    return key, settings


def _destination_from_attrs(attrs: Any) -> tuple[DestinationKey, DestinationSettings]:
    key = DestinationKey(
        address=ipaddress.ip_address(attrs.get("IPVS_DEST_ATTR_ADDR")),
        port=attrs.get("IPVS_DEST_ATTR_PORT") or 0,
    )
    code = (attrs.get("IPVS_DEST_ATTR_FWD_METHOD") or 0) & genl_codec.FWD_MASK
    settings = genl_codec.destination_settings(
        code,
        attrs.get("IPVS_DEST_ATTR_WEIGHT") or 0,
        attrs.get("IPVS_DEST_ATTR_U_THRESH") or 0,
        attrs.get("IPVS_DEST_ATTR_L_THRESH") or 0,
        attrs.get("IPVS_DEST_ATTR_TUN_TYPE") or 0,
        socket.ntohs(attrs.get("IPVS_DEST_ATTR_TUN_PORT") or 0),
        attrs.get("IPVS_DEST_ATTR_TUN_FLAGS") or 0,
    )
    if settings is None:
        raise genl_codec.unknown_forwarding(key, code)
    return key, settings


# ------------------------------------------------------------------ statistics

@dataclass(frozen=True, slots=True)
class ServiceStats:
    service: Counters
    destinations: dict[DestinationKey, Counters]


_COUNTER_ATTRS = {
    "IPVS_STATS_ATTR_CONNS": "connections",
    "IPVS_STATS_ATTR_INPKTS": "packets_in",
    "IPVS_STATS_ATTR_OUTPKTS": "packets_out",
    "IPVS_STATS_ATTR_INBYTES": "bytes_in",
    "IPVS_STATS_ATTR_OUTBYTES": "bytes_out",
    "IPVS_STATS_ATTR_CPS": "connections_per_second",
    "IPVS_STATS_ATTR_INPPS": "packets_in_per_second",
    "IPVS_STATS_ATTR_OUTPPS": "packets_out_per_second",
    "IPVS_STATS_ATTR_INBPS": "bytes_in_per_second",
    "IPVS_STATS_ATTR_OUTBPS": "bytes_out_per_second",
}


def _counters(attrs: Any, name: str) -> Counters:
    stats = attrs.get(name)
    if stats is None:
        return Counters()
    values: dict[str, int] = {}
    # Attributes pyroute2 does not know (the kernel's padding) are skipped.
    for attr, value in stats.get("attrs", ()):
        field_name = _COUNTER_ATTRS.get(attr)
        if field_name is not None and isinstance(value, int):
            values[field_name] = value
    return Counters(**values)


def _dumped_service(attrs: Any) -> DumpedService:
    key, settings = _service_from_attrs(attrs)
    return DumpedService(key, settings, _counters(attrs, "IPVS_SVC_ATTR_STATS64"))


def _dumped_destination(attrs: Any) -> DumpedDestination:
    key, settings = _destination_from_attrs(attrs)
    return DumpedDestination(
        key, settings, _counters(attrs, "IPVS_DEST_ATTR_STATS64"),
        ConnectionCounts(
            active=attrs.get("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0,
            inactive=attrs.get("IPVS_DEST_ATTR_INACT_CONNS") or 0,
            persistent=attrs.get("IPVS_DEST_ATTR_PERSIST_CONNS") or 0,
        ))


# ------------------------------------------------------------------ batched writing

@dataclass
class WriteStats:
    """What `NetlinkBackend.apply_all` did: operations given, requests sent, and the
    system calls it took."""

    operations: int = 0
    requests: int = 0
    sends: int = 0
    receives: int = 0


def _open_genl_socket(netns: str | None) -> socket.socket:
    """A raw NETLINK_GENERIC socket, made inside `netns` (its IPVS table is the one the
    requests change); never creates the namespace."""
    try:
        if netns:
            from pyroute2 import netns as pyroute2_netns

            sock = pyroute2_netns.create_socket(
                netns, socket.AF_NETLINK, socket.SOCK_RAW, genl_codec.NETLINK_GENERIC, flags=0)
        else:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, genl_codec.NETLINK_GENERIC)
        sock.bind((0, 0))
    except OSError as error:
        where = f" in network namespace {netns!r}" if netns else ""
        code = error.errno or 0
        raise IpvsError(f"cannot open a generic netlink socket{where}: {error}",
                        None, code) from error
    return sock


def _add_is_conclusive(op: Operation) -> bool:
    """Whether the kernel, when this ADD_SERVICE fails for any reason but "exists",
    has no such service: it looks the service up (and answers EEXIST) unless the
    request is malformed, and the codec's requests are malformed only by names too
    long for the kernel's attribute policy (15 bytes for a scheduler)."""
    settings = op.service_settings
    if settings is None:
        return False
    for name in (settings.scheduler, settings.persistence_engine or ""):
        encoded = name.encode("utf-8", "replace")
        if len(encoded) > 14 or b"\0" in encoded:
            return False
    return True


class _Batch:
    """The requests encoded but not sent yet."""

    __slots__ = ("adds", "buffer", "indexes", "last_offset")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.indexes: dict[int, int] = {}  # seq -> index of the operation
        self.adds: set[ServiceKey] = set()  # services an ADD_SERVICE in here creates
        self.last_offset = 0


class _BatchWriter:
    """Sends many IPVS requests per `send()` on a raw generic netlink socket.

    The kernel handles a netlink buffer inside the `send()` call, every message in
    order, and queues its answers on this socket before `send()` returns. A request
    without NLM_F_ACK is answered only if it fails; the last request of each buffer
    carries NLM_F_ACK, so its answer says the whole buffer was handled (the answers
    of the ones before it are queued ahead of it). Answers are never lost: a buffer
    holds at most as many requests as answers fit in the socket's receive buffer
    (`ANSWER_TRUESIZE` each, the kernel's memory cost of an answer, with the error
    answers kept short by NETLINK_CAP_ACK), and it is read empty after each buffer.
    Should the kernel drop answers anyway (ENOBUFS), the outcome of that buffer is
    unknown, and `IpvsError` (with no operation) says to read the table again.
    """

    MAX_REQUESTS = 1024  # per send()
    MAX_BYTES = 256 * 1024
    BUFFER_SIZE = 4 * 1024 * 1024  # asked for SO_SNDBUF and SO_RCVBUF
    ANSWER_TRUESIZE = 2048
    TIMEOUT = 60.0

    def __init__(self, sock: socket.socket, family_id: int, *, ack_each: bool = False,
                 max_requests: int | None = None) -> None:
        self.sock = sock
        self.family_id = family_id
        self.ack_each = ack_each
        self.pid = sock.getsockname()[0]
        self._seq = 0
        self._receive_buffer = bytearray(64 * 1024)
        # Error answers without a copy of the request (older kernels copy it: an
        # answer still costs less than ANSWER_TRUESIZE).
        with contextlib.suppress(OSError):
            sock.setsockopt(genl_codec.SOL_NETLINK, genl_codec.NETLINK_CAP_ACK, 1)
        rcvbuf = self._grow(socket.SO_RCVBUF, 33)  # SO_RCVBUFFORCE
        sndbuf = self._grow(socket.SO_SNDBUF, 32)  # SO_SNDBUFFORCE
        self.max_requests = max(1, min(max_requests or self.MAX_REQUESTS,
                                       rcvbuf // self.ANSWER_TRUESIZE))
        # netlink refuses a message longer than the send buffer less 32 bytes.
        self.max_bytes = max(1024, min(self.MAX_BYTES, sndbuf - 1024))
        sock.settimeout(self.TIMEOUT)

    def _grow(self, option: int, force_option: int) -> int:
        """Set a socket buffer size (beyond the sysctl limit when allowed: IPVS needs
        CAP_NET_ADMIN anyway); the size the kernel granted."""
        for name in (force_option, option):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, name, self.BUFFER_SIZE)
                break
            except OSError:
                continue
        return self.sock.getsockopt(socket.SOL_SOCKET, option)

    def close(self) -> None:
        self.sock.close()

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    def write(self, ops: list[Operation], stats: WriteStats) -> list[IpvsError | None]:
        """Send `ops` in order; the refusal of each (None: applied, or not sent because
        adding its service failed before it)."""
        stats.operations += len(ops)
        outcomes: list[IpvsError | None] = [None] * len(ops)
        # Services whose ADD_SERVICE failed (not by existing): nothing more is sent for
        # them, as `apply_all` does not attempt those operations.
        failed_adds: set[ServiceKey] = set()
        batch = _Batch()
        add = OperationKind.ADD_SERVICE
        for index, op in enumerate(ops):
            if op.service in failed_adds:
                continue
            if op.kind is add and op.service in batch.adds:
                # A second add of one service: its outcome depends on the first one's.
                self._flush(batch, ops, outcomes, failed_adds, stats)
                batch = _Batch()
                if op.service in failed_adds:
                    continue
            try:
                command, flags, attrs = genl_codec.payload(op)
            except (struct.error, OverflowError, ValueError) as error:
                outcomes[index] = _local_refusal(op, error)
                if op.kind is add:
                    failed_adds.add(op.service)
                continue
            except BaseException:
                self._flush(batch, ops, outcomes, failed_adds, stats)
                raise
            if not self.ack_each:
                flags &= ~genl_codec.NLM_F_ACK
            seq = self._next_seq()
            message = genl_codec.message(self.family_id, seq, command, flags, attrs, self.pid)
            if batch.indexes and (len(batch.indexes) >= self.max_requests
                                  or len(batch.buffer) + len(message) > self.max_bytes):
                self._flush(batch, ops, outcomes, failed_adds, stats)
                batch = _Batch()
            batch.last_offset = len(batch.buffer)
            batch.buffer += message
            batch.indexes[seq] = index
            if op.kind is add:
                batch.adds.add(op.service)
                if not _add_is_conclusive(op):
                    # Its failure would not prove the service absent: send nothing more
                    # on it before its answer.
                    self._flush(batch, ops, outcomes, failed_adds, stats)
                    batch = _Batch()
        self._flush(batch, ops, outcomes, failed_adds, stats)
        return outcomes

    def _flush(self, batch: _Batch, ops: list[Operation], outcomes: list[IpvsError | None],
               failed_adds: set[ServiceKey], stats: WriteStats) -> None:
        if not batch.indexes:
            return
        buffer = batch.buffer
        last_seq = next(reversed(batch.indexes))
        flags_at = batch.last_offset + 6  # nlmsghdr: len u32, type u16, flags u16
        flags = int.from_bytes(buffer[flags_at:flags_at + 2], "little")
        buffer[flags_at:flags_at + 2] = (flags | genl_codec.NLM_F_ACK).to_bytes(2, "little")
        try:
            self.sock.send(buffer)
            stats.sends += 1
            stats.requests += len(batch.indexes)
            done = False
            while not done:
                size = self.sock.recv_into(self._receive_buffer)
                stats.receives += 1
                for seq, code in genl_codec.parse_acks(memoryview(self._receive_buffer)[:size]):
                    index = batch.indexes.get(seq)
                    if index is None:
                        continue  # an answer to an earlier, abandoned batch
                    if code:
                        op = ops[index]
                        outcomes[index] = IpvsError.refused(op, code)
                        if op.kind is OperationKind.ADD_SERVICE and code != errno.EEXIST:
                            failed_adds.add(op.service)
                    if seq == last_seq:
                        done = True
        except (OSError, ValueError) as error:
            code = getattr(error, "errno", None) or errno.EIO
            raise IpvsError(
                f"IPVS requests went unanswered ({len(batch.indexes)} sent together: "
                f"{error}); their outcome is unknown, read the table again", None, code,
            ) from error


class _Replay:
    """Answers `backend.apply_all`'s `apply` calls with outcomes already known, so the
    batched path reports through the very same contract code."""

    def __init__(self, ops: list[Operation], outcomes: list[IpvsError | None]) -> None:
        self._ops = ops
        self._outcomes = outcomes
        self._next = 0

    def apply(self, op: Operation) -> None:
        # apply_all calls back in list order, skipping some: find this very object.
        while self._ops[self._next] is not op:
            self._next += 1
        outcome = self._outcomes[self._next]
        self._next += 1
        if outcome is not None:
            raise outcome


# ------------------------------------------------------------------ reading

class _DumpFailed(Exception):
    """The kernel answered a dump request with an error."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _DumpReader:
    """Reads the table with dump requests on a raw generic netlink socket of its own,
    decoded by `genl_codec` (pyroute2's parser costs seconds for 21,000 entries).

    A netlink socket runs one dump at a time: the services, then each service's real
    servers, one dump after the other. The kernel fills one datagram (up to 32 KiB)
    per `recv()`, ending with NLMSG_DONE. A dump the kernel flags NLM_F_DUMP_INTR (the
    table changed meanwhile) is asked again, up to `ATTEMPTS` times. After any failure
    the socket is closed (a dump left half-read would refuse the next one, EBUSY)."""

    BUFFER_SIZE = 256 * 1024
    ATTEMPTS = 5
    TIMEOUT = 30.0

    def __init__(self, sock: socket.socket, family_id: int) -> None:
        self.sock = sock
        self.family_id = family_id
        self.pid = sock.getsockname()[0]
        self._seq = 0
        self._buffer = bytearray(self.BUFFER_SIZE)
        sock.settimeout(self.TIMEOUT)

    def close(self) -> None:
        self.sock.close()

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    def dump(self, request: Callable[[int], bytes]) -> list[bytes]:
        """The attributes of every message answering `request(seq)`; `_DumpFailed`
        for the kernel's error answer."""
        for _attempt in range(self.ATTEMPTS):
            seq = self._next_seq()
            self.sock.send(request(seq))
            answer = genl_codec.DumpAnswer(seq)
            messages: list[bytes] = []
            view = memoryview(self._buffer)
            while not answer.done:
                # MSG_TRUNC: netlink returns the datagram's real length.
                size = self.sock.recv_into(self._buffer, 0, socket.MSG_TRUNC)
                if size > len(self._buffer):
                    raise genl_codec.MalformedAnswer(
                        f"a {size}-byte netlink answer does not fit {len(self._buffer)} bytes")
                messages.extend(answer.feed(view[:size]))
            if answer.error:
                raise _DumpFailed(answer.error)
            if not answer.interrupted:
                return messages
        raise _DumpFailed(errno.EINTR)

    def read(self) -> list[tuple[DumpedService, list[DumpedDestination]]]:
        result = []
        family_id, pid = self.family_id, self.pid
        for attrs in self.dump(lambda seq: genl_codec.encode_service_dump(
                family_id, seq, pid=pid)):
            service = genl_codec.decode_service(attrs)
            key = service.key
            try:
                answers = self.dump(lambda seq, key=key: genl_codec.encode_destination_dump(
                    key, family_id, seq, pid=pid))
            except _DumpFailed as error:
                if error.code == errno.ESRCH:  # deleted since the service dump
                    continue
                raise
            decode = genl_codec.decode_destination
            result.append((service, [decode(a, key.family) for a in answers]))
        return result


# ------------------------------------------------------------------ the backend

S = TypeVar("S")
D = TypeVar("D")


class NetlinkBackend(Backend):
    """The IPVS table of one network namespace (None: this process's), through netlink."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._socket: IPVS | None = None
        self._writer: _BatchWriter | None = None
        self._reader: _DumpReader | None = None
        self._raw_dump_failed = False
        # False: read the table through pyroute2's parser (the fallback), for comparison.
        self.raw_dump = True
        # What `apply_all` did so far (benchmarks and tests read it).
        self.write_stats = WriteStats()

    def _ipvs(self) -> IPVS:
        if self._socket is None:
            try:
                self._socket = IPVS(netns=self.netns) if self.netns else IPVS()
            except NetlinkError as error:
                where = f" in network namespace {self.netns!r}" if self.netns else ""
                raise IpvsError(
                    f"cannot open the kernel's IPVS interface{where}: "
                    f"{os.strerror(error.code)} (errno {error.code}; is the ip_vs module "
                    "loaded?)", None, error.code) from error
        return self._socket

    def close(self) -> None:
        self._drop_reader()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> NetlinkBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- reading

    def _read(self) -> list[tuple[DumpedService, list[DumpedDestination]]]:
        """Every service with its real servers, as the kernel holds them: through the
        codec on a raw socket, or through pyroute2 if no raw socket can be opened."""
        family_id = self._ipvs().prid  # the IPVS family's id, resolved by pyroute2
        if self.raw_dump and self._reader is None and not self._raw_dump_failed:
            try:
                self._reader = _DumpReader(_open_genl_socket(self.netns), family_id)
            except IpvsError:
                self._raw_dump_failed = True
        reader = self._reader if self.raw_dump else None
        if reader is None:
            return self._read_pyroute2()
        try:
            return reader.read()
        except _DumpFailed as error:
            self._drop_reader()
            raise self._read_error(error.code) from error
        except (OSError, struct.error, genl_codec.MalformedAnswer) as error:
            self._drop_reader()
            code = getattr(error, "errno", None) or errno.EBADMSG
            raise IpvsError(f"reading the IPVS table failed: {error}", None, code) from error
        except BaseException:
            self._drop_reader()
            raise

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @staticmethod
    def _read_error(code: int) -> IpvsError:
        return IpvsError(
            f"reading the IPVS table failed: {os.strerror(code)} "
            f"(errno {code}; is the ip_vs module loaded?)", None, code)

    def _read_pyroute2(self) -> list[tuple[DumpedService, list[DumpedDestination]]]:
        """`_read` through pyroute2's parser. Its messages are let go at once: holding
        a table's worth of them (21,000) takes gigabytes."""
        ipvs = self._ipvs()
        try:
            result = []
            for message in ipvs.service("dump"):
                service = _dumped_service(message.get("IPVS_CMD_ATTR_SERVICE"))
                request = _service_key_request(service.key)
                try:
                    replies = ipvs.dest("dump", request)
                except NetlinkError as error:
                    if error.code == errno.ESRCH:  # deleted since the service dump
                        continue
                    raise
                result.append((service, [_dumped_destination(m.get("IPVS_CMD_ATTR_DEST"))
                                         for m in replies]))
            return result
        except NetlinkError as error:
            raise self._read_error(error.code) from error

    def dump(self) -> Table:
        return {service.key: Service(settings=service.settings,
                                     destinations={d.key: d.settings for d in dests})
                for service, dests in self._read()}

    def stats(self) -> dict[ServiceKey, ServiceStats]:
        """Counters of every service and real server (the kernel folds them every 2 s)."""
        return {service.key: ServiceStats(service=service.counters,
                                          destinations={d.key: d.counters for d in dests})
                for service, dests in self._read()}

    # --------------------------------------------------------------- writing

    def apply(self, op: Operation) -> None:
        ipvs = self._ipvs()
        kind = op.kind
        try:
            if kind is OperationKind.ADD_SERVICE:
                ipvs.service("add", service=_service_request(op.service, op.service_settings))
            elif kind is OperationKind.EDIT_SERVICE:
                ipvs.service("set", service=_service_request(op.service, op.service_settings))
            elif kind is OperationKind.DELETE_SERVICE:
                ipvs.service("del", service=_service_key_request(op.service))
            else:
                if op.destination is None:
                    raise ValueError("no real server given")
                service = _service_key_request(op.service)
                if kind is OperationKind.DELETE_DESTINATION:
                    dest = _destination_request(op.destination)
                    command = "del"
                else:
                    if op.destination_settings is None:
                        raise ValueError("no real server settings given")
                    dest = _destination_request(op.destination, op.destination_settings)
                    command = "add" if kind is OperationKind.ADD_DESTINATION else "set"
                ipvs.dest(command, service=service, dest=dest)
        except NetlinkError as error:
            raise IpvsError.refused(op, error.code) from error
        except (struct.error, OverflowError, ValueError) as error:
            raise _local_refusal(op, error) from error

    def apply_all(self, ops: Iterable[Operation]) -> list[IpvsError]:
        """`backend.apply_all`'s contract and results (the same errors, in the same
        order, with the same messages), many requests per system call."""
        ops = list(ops)
        if not ops:
            return []
        try:
            writer = self._batch_writer()
        except IpvsError:
            # No IPVS here: the one-at-a-time path reports it for each operation.
            return backend_module.apply_all(self, ops)
        outcomes = writer.write(ops, self.write_stats)
        return backend_module.apply_all(_Replay(ops, outcomes), ops)

    def _batch_writer(self) -> _BatchWriter:
        if self._writer is None:
            family_id = self._ipvs().prid  # the IPVS family's id, resolved by pyroute2
            self._writer = _BatchWriter(_open_genl_socket(self.netns), family_id)
        return self._writer

    # ------------------------------------------------ sync daemons and timeouts
    # The requests are in `director.ipvs.netlink_sync` (pyroute2 has no helpers for them).

    def sync_daemons(self) -> list[SyncDaemon]:
        return netlink_sync.sync_daemons(self._ipvs())

    def start_sync_daemon(self, daemon: SyncDaemon) -> None:
        netlink_sync.start_sync_daemon(self._ipvs(), daemon)

    def stop_sync_daemon(self, state: SyncState) -> None:
        netlink_sync.stop_sync_daemon(self._ipvs(), state)

    def timeouts(self) -> Timeouts:
        return netlink_sync.timeouts(self._ipvs())

    def set_timeouts(self, timeouts: Timeouts) -> None:
        netlink_sync.set_timeouts(self._ipvs(), timeouts)


# (added for `lvsadm`: ipvsadm's ActiveConn / InActConn / PersistConn columns)

def connection_counts(
    backend: NetlinkBackend,
) -> dict[ServiceKey, dict[DestinationKey, ConnectionCounts]]:
    """Per service and real server: the kernel's current connection counts."""
    return {service.key: {d.key: d.connections for d in dests}
            for service, dests in backend._read()}
