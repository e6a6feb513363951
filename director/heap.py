"""Keeps Python's cyclic garbage collector off the configuration.

A director holds its whole configuration for as long as it runs: 40,000 real servers
are a few million objects, and every full collection walks them all (about 0.5 s
here), stalling checks, adverts and reloads at random. Objects that were there when
`settle` ran are left out of later collections (`gc.freeze`); an old configuration is
still freed by reference counting when a reload drops it (the model has no cycles).
"""

from __future__ import annotations

import gc


def settle(full: bool = False) -> None:
    """After a (re)load: collect what cycles there are (all generations when `full`,
    at start; the young ones after a reload, cheap), then freeze the rest."""
    gc.collect() if full else gc.collect(1)
    gc.freeze()
