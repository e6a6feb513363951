"""keepalived.conf -> `Config`: route each top-level statement to its builder, then
validate the whole.

``global_defs`` (all such blocks, merged, and the top-level daemon statements) is built
first and virtual_server_groups before virtual servers, so that nothing depends on the
order of the file; everything else keeps the file's order.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from director.config import convert
from director.config.blocks import list_block, no_block, read_timer, unknown_keyword
from director.config.build_globals import TOP_LEVEL_GLOBAL_KEYWORDS, build_global_defs
from director.config.build_lvs import build_virtual_server_group, build_virtual_servers
from director.config.build_vrrp import TOP_LEVEL_VRRP_KEYWORDS, build_vrrp_config
from director.config.errors import ConfigError, Diagnostics, Problem
from director.config.model import (
    Config,
    GlobalDefs,
    InterfaceDelays,
    LinkbeatInterface,
    LvsSyncDaemon,
    RawStatement,
    SslSettings,
    VirtualServer,
)
from director.config.reader import read_file
from director.config.tree import Node
from director.config.validate_lvs import validate_lvs
from director.config.validate_ranges import validate_ranges
from director.config.validate_vrrp import validate_vrrp

# Statements keepalived.conf(5) documents that the director reads but does not act on.
DOCUMENTED_UNSUPPORTED = frozenset({
    "bfd_instance", "track_group", "static_ipaddress", "static_routes", "static_rules",
    "track_file", "vrrp_track_file", "vrrp_track_process", "garp_group", "vrrp_script",
    "vrrp_sync_group", "vrrp_instance",
}) - frozenset(TOP_LEVEL_VRRP_KEYWORDS)

_LINKBEAT_TYPES = ("MII", "ETHTOOL", "IOCTL")
_SSL_KEYS = ("password", "ca", "certificate", "key")


VirtualServersBuilder = Callable[[list[Node], Diagnostics, GlobalDefs], list[VirtualServer]]


def build_config(nodes: list[Node], diag: Diagnostics,
                 virtual_servers: VirtualServersBuilder = build_virtual_servers) -> Config:
    """Build and validate a Config from the statements of a keepalived.conf.
    ``virtual_servers`` builds the virtual_server statements, in their order, once the
    global settings are known (`director.config.incremental` reuses earlier builds)."""
    global_lines: list[Node] = []
    global_origin = ""
    top_globals: list[Node] = []
    group_nodes: list[Node] = []
    vs_nodes: list[Node] = []
    vrrp_nodes: list[Node] = []
    linkbeat: list[LinkbeatInterface] = []
    delays: list[InterfaceDelays] = []
    unsupported: list[RawStatement] = []
    ssl: SslSettings | None = None
    for node in nodes:
        keyword = node.keyword
        if keyword == "global_defs":
            if _needs_block(node, diag):
                global_origin = global_origin or node.origin
                global_lines.extend(node.children or ())
        elif keyword == "virtual_server":
            vs_nodes.append(node)
        elif keyword in TOP_LEVEL_VRRP_KEYWORDS:
            vrrp_nodes.append(node)
        elif keyword in TOP_LEVEL_GLOBAL_KEYWORDS:
            top_globals.append(node)
        elif keyword == "virtual_server_group":
            group_nodes.append(node)
        elif keyword == "SSL":
            ssl = _ssl(node, diag) or ssl
        elif keyword == "linkbeat_interfaces":
            linkbeat.extend(_block_entries(node, diag, _linkbeat_interface))
        elif keyword == "interface_up_down_delays":
            delays.extend(_block_entries(node, diag, _interface_delays))
        elif keyword in DOCUMENTED_UNSUPPORTED:
            diag.warning(node.origin, f"'{keyword}' is not supported yet; ignored")
            unsupported.append(_raw(node))
        else:
            unknown_keyword(node, diag, "the top level", _TOP_LEVEL)
    global_defs, vrrp_globals = build_global_defs(global_lines, diag, top_level=top_globals,
                                                  origin=global_origin)
    groups = [g for g in (build_virtual_server_group(n, diag) for n in group_nodes) if g]
    config = Config(
        global_defs=global_defs,
        vrrp=build_vrrp_config(vrrp_nodes, diag, vrrp_globals),
        ssl=ssl,
        virtual_server_groups=tuple(groups),
        virtual_servers=tuple(virtual_servers(vs_nodes, diag, global_defs)),
        linkbeat_interfaces=tuple(linkbeat),
        interface_up_down_delays=tuple(delays),
        unsupported=tuple(unsupported),
    )
    config = _adopt_instance_sync_daemon(config)
    validate_vrrp(config, diag)
    validate_lvs(config, diag)
    return config


def _adopt_instance_sync_daemon(config: Config) -> Config:
    """keepalived before 1.2.20 named the sync daemon's interface in a vrrp_instance
    (``lvs_sync_daemon_interface``); it means a global lvs_sync_daemon bound to that
    instance, unless global_defs sets one."""
    if config.global_defs.lvs_sync_daemon is not None:
        return config
    for instance in config.vrrp.instances:
        if instance.lvs_sync_daemon_interface:
            daemon = LvsSyncDaemon(interface=instance.lvs_sync_daemon_interface,
                                   vrrp_instance=instance.name, origin=instance.origin)
            return replace(config, global_defs=replace(config.global_defs,
                                                       lvs_sync_daemon=daemon))
    return config


def validate_config(config: Config, diag: Diagnostics) -> Config | None:
    """Validate a Config built from elsewhere (YAML); None when it has errors."""
    validate_ranges(config, diag)  # the value checks the keepalived.conf builders make
    validate_vrrp(config, diag)
    validate_lvs(config, diag)
    return None if diag.failed else config


def load_keepalived(path: str, *, strict: bool = False,
                    config_id: str | None = None) -> tuple[Config, list[Problem]]:
    """Read, build and validate a keepalived.conf. Returns the config and the problems
    found (warnings only); raises ConfigError with every problem when there is an error
    (or, with ``strict``, a warning)."""
    diag = Diagnostics(strict=strict)
    with gc_paused():
        nodes = read_file(path, diag, config_id)
        config = build_config(nodes, diag)
    if diag.failed:
        raise ConfigError(diag.problems)
    return config, list(diag.problems)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a config is read and built.

    Loading allocates hundreds of thousands of small objects and no cycles; the
    collector's repeated full passes over them cost more than the rest of the work
    (a 2,000 x 20 config: 2.8 s with it, 1.4 s without).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ----------------------------------------------------------------- small statements


def _needs_block(node: Node, diag: Diagnostics) -> bool:
    """A block whose lines may open blocks of their own (global_defs, SSL)."""
    if node.children is None:
        diag.error(node.origin, f"'{node.keyword}' needs a {{ }} block")
        return False
    if node.args:
        diag.warning(node.args[0].origin, f"'{node.keyword}' takes no arguments; "
                                          f"'{node.args[0]}' ignored")
    return True


def _block_entries(node: Node, diag: Diagnostics, read: Callable[[Node, Diagnostics], object]
                   ) -> list:
    lines = list_block(node, diag)
    if lines is None:
        return []
    entries = (read(child, diag) for child in lines)
    return [e for e in entries if e is not None]


def _linkbeat_interface(node: Node, diag: Diagnostics) -> LinkbeatInterface | None:
    no_block(node, diag)
    if not convert.args(node, diag, 0, 1):
        return None
    polling = None
    if node.args:
        polling = convert.choice(node.args[0], _LINKBEAT_TYPES, diag, "polling type")
        if polling is None:
            return None
    return LinkbeatInterface(name=str(node.keyword), polling=polling, origin=node.origin)


def _interface_delays(node: Node, diag: Diagnostics) -> InterfaceDelays | None:
    no_block(node, diag)
    if not convert.args(node, diag, 1, 2):
        return None
    down = read_timer(node.args[0], diag, "down delay", high=255)
    up = read_timer(node.args[1], diag, "up delay", high=255) if len(node.args) > 1 else down
    if down is None or up is None:
        return None
    return InterfaceDelays(interface=str(node.keyword), down_delay=down, up_delay=up,
                           origin=node.origin)


def _ssl(node: Node, diag: Diagnostics) -> SslSettings | None:
    if not _needs_block(node, diag):
        return None
    values: dict[str, str] = {}
    for child in node.children or ():
        if child.keyword in _SSL_KEYS:
            no_block(child, diag)
            word = convert.first(child, diag)
            if word is not None:
                values[str(child.keyword)] = str(word)
        else:
            unknown_keyword(child, diag, "SSL", _SSL_KEYS)
    return SslSettings(origin=node.origin, **values)


def _raw(node: Node) -> RawStatement:
    children = None
    if node.children is not None:
        children = tuple(_raw(child) for child in node.children)
    return RawStatement(keyword=str(node.keyword), args=tuple(str(a) for a in node.args),
                        children=children, origin=node.origin)


_TOP_LEVEL = (frozenset({"global_defs", "virtual_server", "virtual_server_group", "SSL",
                         "linkbeat_interfaces", "interface_up_down_delays"})
              | TOP_LEVEL_GLOBAL_KEYWORDS | DOCUMENTED_UNSUPPORTED
              | frozenset(TOP_LEVEL_VRRP_KEYWORDS))
