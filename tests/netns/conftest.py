"""Fixtures of the netns tier: a lab per test, keepalived peers, and the tier's skip."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.keepalived_peer import (
    KEEPALIVED,
    MISSING_REASON,
    KeepalivedFactory,
    KeepalivedPeer,
)
from tests.netns.lab import Lab, Node, netns_unavailable_reason

HERE = Path(__file__).resolve().parent
SKIP_REASON = "netns tier: needs root and network namespaces (run `sudo make test-netns`)"


@functools.cache
def _unavailable() -> str | None:
    return netns_unavailable_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.netns)


@pytest.fixture(autouse=True)
def _netns_tier() -> None:
    why = _unavailable()
    if why is not None:
        pytest.skip(f"{SKIP_REASON} [{why}]")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A fresh lab; its processes and namespaces are removed even when the test fails."""
    with Lab(tmp_path / "lab") as lab:
        yield lab


@pytest.fixture
def keepalived_bin() -> Path:
    if not KEEPALIVED.exists():
        pytest.skip(MISSING_REASON)
    return KEEPALIVED


@pytest.fixture
def keepalived(lab: Lab, keepalived_bin: Path) -> KeepalivedFactory:
    """Start keepalived in a node: `keepalived(node, conf_text_or_path, config_id=None)`.

    Text is written to a file in the lab's directory first. The peer is started; the
    lab stops it at teardown (after the peer's own stop, if the test called it).
    """
    peers: list[KeepalivedPeer] = []

    def start(node: Node | str, conf: str | Path, *, config_id: str | None = None,
              name: str = "keepalived") -> KeepalivedPeer:
        ns = node.ns if isinstance(node, Node) else node
        if isinstance(conf, str):
            path = lab.workdir / f"{name}-{ns}.conf"
            path.write_text(conf)
            conf = path
        peer = KeepalivedPeer(lab, ns, conf, config_id=config_id, name=name)
        peers.append(peer)
        return peer.start()

    return start
