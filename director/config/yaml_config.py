"""The native configuration format: YAML (or JSON) written from and read into the model.

Reading builds plain data from the YAML parser's events (safe tags only), keeping every
value's position so that each problem is reported as ``FILE:LINE:COL``, and then decodes
it strictly with `director.config.codec`. Events rather than composed nodes: composing
costs several times more, and a 2,000 x 20 configuration must load in under 2 s.

A whole configuration (`Config`) then inherits as a keepalived.conf does: what the file
leaves out is filled in from where keepalived would take it (`director.config.resolve`),
and dumps write out whatever inheritance would not give back.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from director.config import codec, resolve
from director.config.errors import Diagnostics, location
from director.config.keepalived import validate_config
from director.config.model import Config

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = _TAG + "map", _TAG + "seq"
# Plain scalars that YAML 1.1 resolves to types the model never holds: kept as written.
_AS_WRITTEN = {_TAG + "timestamp", _TAG + "value", _TAG + "merge"}
_SCALARS = {_INT: yaml.SafeLoader.construct_yaml_int,
            _FLOAT: yaml.SafeLoader.construct_yaml_float,
            _BOOL: yaml.SafeLoader.construct_yaml_bool,
            _NULL: yaml.SafeLoader.construct_yaml_null}

MAX_DEPTH = 64
MAX_EXPANDED_VALUES = 5_000_000  # aliases can make a small file expand without bound


def load_yaml(path: str, diag: Diagnostics) -> Config | None:
    """Read, decode and validate a YAML configuration file (JSON too, for a name that
    ends in .json); None when it failed."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        diag.error("", f"cannot read {path}: {error}")
        return None
    with _collector_paused():
        if path.lower().endswith(".json"):
            config = parse_json(text, path, Config, diag)
        else:
            config = parse_yaml(text, path, Config, diag)
        if config is None:
            return None
        return validate_config(config, diag)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector would otherwise run over and over while hundreds of
    thousands of objects, none of them garbage, are made (it triples the load time)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def parse_yaml(text: str, filename: str, cls: Any, diag: Diagnostics) -> Any:
    """Decode YAML text into ``cls`` (a model class) without whole-config validation;
    a `Config` inherits what the text leaves out."""
    with _collector_paused():
        source = YamlSource(filename, diag)
        data = source.read(text)
        if data is codec.INVALID:
            return None
        return _resolved(codec.from_data(cls, data, diag, source), data)


def _resolved(decoded: Any, data: Any) -> Any:
    if type(decoded) is Config:
        return resolve.resolve_config(decoded, data)
    return decoded


def _data(config: object, concise: bool) -> Any:
    if type(config) is Config:
        return resolve.config_data(config, concise=concise)
    return codec.to_data(config)


def dump_yaml(config: object, *, concise: bool = False) -> str:
    """The YAML text of a model object: what differs from the defaults and, for a
    `Config`, what inheritance would not give back. ``concise``: without what
    inheritance gives back (see `resolve.config_data`)."""
    return yaml.dump(_data(config, concise), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, width=100)


def dump_json(config: object, *, concise: bool = False) -> str:
    return json.dumps(_data(config, concise), indent=2, ensure_ascii=False) + "\n"


def parse_json(text: str, filename: str, cls: Any, diag: Diagnostics) -> Any:
    """Decode JSON text into ``cls``. JSON keeps no positions: problems other than syntax
    errors name the path of the value only. (Most JSON is YAML too, and `parse_yaml`
    gives positions, but JSON's escapes and control characters are not all YAML's.)"""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        diag.error(location(filename, error.lineno, error.colno),
                   f"JSON syntax error: {error.msg}")
        return None
    except RecursionError:
        diag.error(location(filename, 1, 1), "the document is nested too deeply")
        return None
    return _resolved(codec.from_data(cls, data, diag), data)


def _mark_origin(filename: str, mark: Any) -> str:
    if mark is None:
        return ""
    return location(filename, mark.line + 1, mark.column + 1)


def _offset_origin(filename: str, text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return location(filename, line, col)


def _yaml_message(error: yaml.MarkedYAMLError, filename: str) -> str:
    message = error.problem or "invalid YAML"
    if error.context:
        where = ""
        if error.context_mark is not None and error.context_mark != error.problem_mark:
            where = f" at {_mark_origin(filename, error.context_mark)}"
        message += f" ({error.context}{where})"
    return message


class _Stop(Exception):
    """Reading cannot go on; the reason has been reported."""


_OPEN: Any = object()  # an anchor whose value is still being read
_NO_KEY: Any = object()
_IN_LIST: Any = object()
_SKIP: Any = object()  # a bad or duplicate key: its value is dropped
_MERGE: Any = object()
_MISSING: Any = object()


# A position in the text is one int, line << _LINE | column (both 0-based), and a
# key/value pair of positions is key << _PAIR | value: hundreds of thousands of them are
# kept, and ints cost far less than the parser's event and mark objects.
_LINE = 32
_COLUMN_MASK = (1 << _LINE) - 1
_PAIR = 96
_VALUE_MASK = (1 << _PAIR) - 1


# Plain scalars that YAML reads as numbers, booleans or null hold none of these.
_PLAIN_TOKEN = re.compile(r"[^\s,\[\]{}]*")
_NOT_PLAIN = frozenset("'\"!&*|>")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks


def _position(mark: Any) -> int:
    return mark.line << _LINE | mark.column


class YamlSource:
    """Reads YAML text into plain data and remembers where each value was written: for
    every mapping and list built, the positions of its keys and values. It is the
    `codec.Source` of that data."""

    def __init__(self, filename: str, diag: Diagnostics):
        self.filename = filename
        self.diag = diag
        self.root = 0  # the position of the document's root value
        # id(container) -> {key: key/value positions} or [value positions]. The
        # containers live as long as the data, so their ids stay theirs.
        self._children: dict[int, Any] = {}
        self._text = ""
        self._line_starts: list[int] | None = None  # made when first needed
        self._data_root: Any = None
        self._plain: dict[str, Any] = {}  # plain scalar as written -> its value
        self._resolve: Any = None

    # codec.Source

    def origin(self, container: object | None, key: object) -> str:
        position = self._value_position(container, key)
        return "" if position is None else self.location(position)

    def key_origins(self, container: object) -> list[tuple[object, str]]:
        children = self._children.get(id(container))
        if type(children) is not dict:
            return []
        prefix = self.filename
        return [(key, f"{prefix}:{((pair & _VALUE_MASK) >> _LINE) + 1}:"
                      f"{(pair & _COLUMN_MASK) + 1}")
                for key, pair in children.items()]

    def key_origin(self, container: object, key: object) -> str:
        children = self._children.get(id(container))
        if type(children) is not dict or key not in children:
            return self.origin(container, key)
        return self.location(children[key] >> _PAIR)

    def text(self, container: object | None, key: object) -> str | None:
        """A plain scalar as written (for one that YAML did not read as a string).

        Taken from the text rather than kept for every scalar while reading, which
        would cost for each of them what only a few ever need."""
        position = self._value_position(container, key)
        if position is None:
            return None
        if self._line_starts is None:
            self._line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(self._text))]
        line, column = position >> _LINE, position & _COLUMN_MASK
        if line >= len(self._line_starts):
            return None
        start = self._line_starts[line] + column
        if self._text[start:start + 1] in _NOT_PLAIN:
            return None
        token = _PLAIN_TOKEN.match(self._text, start).group()
        # Only what was read there: never a neighbour's text if the count went astray.
        value = self._plain.get(token, _MISSING)
        try:
            actual = self._data_root if container is None else container[key]
        except (LookupError, TypeError):
            return None
        if value is not actual and (type(value) is not type(actual) or value != actual):
            return None
        return token

    def _value_position(self, container: object | None, key: object) -> int | None:
        if container is None:
            return self.root
        children = self._children.get(id(container))
        if type(children) is dict:
            pair = children.get(key)
            return None if pair is None else pair & _VALUE_MASK
        if children is not None and type(key) is int and 0 <= key < len(children):
            return children[key]
        return None

    def location(self, position: int) -> str:
        return f"{self.filename}:{(position >> _LINE) + 1}:{(position & _COLUMN_MASK) + 1}"

    def mark(self, event: Any) -> str:
        return self.location(_position(event.start_mark))

    # Reading

    def read(self, text: str) -> Any:
        """The plain data of the single document in ``text`` ({} when there is none), or
        codec.INVALID after reporting why it cannot be read."""
        self._text = text
        loader = _Loader(text)
        self._resolve = loader.resolve
        try:
            return self._stream(loader.get_event)
        except yaml.MarkedYAMLError as error:
            self.diag.error(_mark_origin(self.filename, error.problem_mark),
                            f"YAML syntax error: {_yaml_message(error, self.filename)}")
        except yaml.reader.ReaderError as error:
            self.diag.error(_offset_origin(self.filename, text, error.position),
                            f"YAML syntax error: {error.reason} "
                            f"(character {error.character!r})")
        except yaml.YAMLError as error:
            self.diag.error("", f"YAML syntax error: {error}")
        except _Stop:
            pass
        finally:
            loader.dispose()
        return codec.INVALID

    def _stream(self, get: Any) -> Any:
        get()  # the stream's start
        event = get()
        if isinstance(event, yaml.StreamEndEvent):
            data: dict = {}
            self._children[id(data)] = {}
            return data
        data = self._document(get)
        get()  # the document's end
        event = get()
        if not isinstance(event, yaml.StreamEndEvent):
            self.diag.error(self.mark(event), "a configuration is a single YAML document, "
                                              "and another one starts here")
            return codec.INVALID
        return data

    def _document(self, get: Any) -> Any:
        """Build the document's root value from its events, without recursion. One loop
        kept whole: it runs once per event, and calls cost."""
        stack: list[_Frame] = []
        top: _Frame | None = None
        anchors: dict[str, Any] = {}  # anchor -> (value, expanded size) or _OPEN
        plain = self._plain
        children_of = self._children
        # Values read so far, each alias counted at the size of what it repeats: without
        # aliases this is bounded by the size of the text, so only aliases check it.
        expanded = 0
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
        ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        while True:
            event = get()
            kind = type(event)
            if kind is scalar_event:
                expanded += 1
                mark = event.start_mark
                position = mark.line << _LINE | mark.column
                if event.tag is None and event.anchor is None:
                    if top is not None and top.key is _NO_KEY:  # a mapping's key
                        key = event.value
                        if key in top.children or key == "<<":
                            top.add_key(self, event)
                        else:
                            top.key = key
                            top.key_position = position
                        continue
                    if event.style:  # quoted or block: a string as it stands
                        value = event.value
                    else:
                        value = plain.get(event.value, _MISSING)
                        if value is _MISSING:
                            value = self._scalar(event)
                else:
                    value = self._scalar(event)
                    if event.anchor is not None:
                        anchors[event.anchor] = (value, 1)
            elif kind is mapping_start or kind is sequence_start:
                if len(stack) >= MAX_DEPTH:
                    self.diag.error(self.mark(event), "the document is nested too deeply")
                    raise _Stop
                expanded += 1
                top = _Frame(event, kind is mapping_start, expanded)
                if event.tag not in (None, "!", _MAP if kind is mapping_start else _SEQ):
                    self.diag.error(self.mark(event), f"unsupported YAML tag {event.tag!r}")
                    top.valid = False
                if event.anchor is not None:
                    anchors[event.anchor] = _OPEN
                stack.append(top)
                continue
            elif kind in ends:
                frame = stack.pop()
                top = stack[-1] if stack else None
                if frame.merges or not frame.valid:
                    value = frame.finish(self)
                else:
                    value = frame.data
                    children_of[id(value)] = frame.children
                event = frame.event
                mark = event.start_mark
                position = mark.line << _LINE | mark.column
                if event.anchor is not None:
                    anchors[event.anchor] = (value, expanded - frame.expanded_before + 1)
            elif kind is alias_event:
                position = _position(event.start_mark)
                entry = anchors.get(event.anchor)
                if entry is None:
                    self.diag.error(self.mark(event), f"undefined alias '{event.anchor}'")
                    value = codec.INVALID
                elif entry is _OPEN:
                    self.diag.error(self.mark(event),
                                    "a YAML alias refers to a value that contains it")
                    value = codec.INVALID
                else:
                    value = entry[0]
                    expanded += entry[1]
                    if expanded > MAX_EXPANDED_VALUES:
                        self.diag.error(self.mark(event),
                                        "the document's aliases expand to too many values")
                        raise _Stop
            else:  # the parser yields nothing else inside a document
                raise _Stop
            if top is None:
                self.root = position
                self._data_root = value
                return value
            key = top.key
            if key is _IN_LIST:
                top.data.append(value)
                top.children.append(position)
            elif key is _NO_KEY:
                top.add_key(self, event)
            else:
                top.key = _NO_KEY
                if key is _MERGE:
                    top.merges.append((value, event))
                elif key is not _SKIP:
                    top.data[key] = value
                    top.children[key] = top.key_position << _PAIR | position

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR or tag in _AS_WRITTEN:
            value = event.value
        else:
            construct = _SCALARS.get(tag)
            if construct is None:
                self.diag.error(self.mark(event), f"unsupported YAML tag {tag!r}")
                return codec.INVALID
            try:
                value = construct(_CONSTRUCTOR, yaml.ScalarNode(tag, event.value))
            except (ValueError, yaml.YAMLError):
                self.diag.error(self.mark(event),
                                f"{event.value!r} is not a valid {tag[len(_TAG):]}")
                return codec.INVALID
        if event.tag is None and not event.style:
            self._plain[event.value] = value
        return value

    def register(self, data: Any, children: Any) -> None:
        self._children[id(data)] = children

    def children_of(self, data: Any) -> Any:
        return self._children.get(id(data))


class _Frame:
    """A mapping or list being read."""

    __slots__ = ("children", "data", "event", "expanded_before", "key", "key_position",
                 "merges", "valid")

    def __init__(self, event: Any, mapping: bool, expanded: int):
        self.event = event
        self.data: Any = {} if mapping else []
        self.children: Any = {} if mapping else []
        # A mapping waits for a key, then for its value; a list takes values.
        self.key: Any = _NO_KEY if mapping else _IN_LIST
        self.key_position = 0
        self.merges: list[tuple[Any, Any]] = []
        self.expanded_before = expanded  # to know the expanded size of an anchored value
        self.valid = True

    def add_key(self, source: YamlSource, event: Any) -> None:
        position = _position(event.start_mark)
        self.key_position = position
        if type(event) is not yaml.ScalarEvent:
            source.diag.error(source.location(position), "a key must be a plain string")
            self.key = _SKIP
        elif event.value == "<<" and event.tag is None and not event.style:
            self.key = _MERGE
        elif event.value in self.children:
            first = source.location(self.children[event.value] >> _PAIR)
            source.diag.error(source.location(position),
                              f"duplicate key '{event.value}' (first at {first})")
            self.key = _SKIP
        else:
            self.key = event.value

    def finish(self, source: YamlSource) -> Any:
        if not self.valid:
            return codec.INVALID
        for value, event in self.merges:
            self._merge(source, value, event)
        source.register(self.data, self.children)
        return self.data

    def _merge(self, source: YamlSource, value: Any, event: Any) -> None:
        """``<<: *base`` or ``<<: [*a, *b]``: keys not set here come from the merged
        mappings, the earlier one winning (YAML's merge key)."""
        if value is codec.INVALID:
            return
        merged = value if isinstance(value, list) else [value]
        for base in merged:
            base_children = source.children_of(base) if isinstance(base, dict) else None
            if base_children is None:
                source.diag.error(source.mark(event), "'<<' merges only mappings")
                return
            for key, item in base.items():
                if key not in self.children:
                    self.data[key] = item
                    self.children[key] = base_children[key]


_CONSTRUCTOR = yaml.SafeLoader("")
