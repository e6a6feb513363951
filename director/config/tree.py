"""The syntax tree of a keepalived.conf, as the reader produces it.

Every statement is a `Node`: a keyword, its argument words, and, when a ``{ ... }``
block follows, its children. Inside list blocks (``virtual_ipaddress``,
``notification_email``, ``track_script``, ...) each line is a Node too: its first word
is the keyword (for instance ``192.0.2.10/24``) and the rest are its args.
Every word knows where it stands, so any later stage can report ``FILE:LINE:COL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Word(str):
    """A string that remembers its location (``FILE:LINE:COL``)."""

    origin: str

    def __new__(cls, value: str, origin: str = "") -> Word:
        word = super().__new__(cls, value)
        word.origin = origin
        return word

    def __reduce__(self):  # keep the location across copy/pickle
        return (Word, (str(self), self.origin))


@dataclass(slots=True)
class Node:
    keyword: Word
    args: list[Word] = field(default_factory=list)
    children: list[Node] | None = None  # None: no block followed; []: an empty block

    @property
    def origin(self) -> str:
        return self.keyword.origin

    @property
    def has_block(self) -> bool:
        return self.children is not None

    def find(self, keyword: str) -> list[Node]:
        return [c for c in self.children or () if c.keyword == keyword]
