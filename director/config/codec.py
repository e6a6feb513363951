"""Plain data (dicts, lists, str, int, float, bool, None) to and from the model's
frozen dataclasses, found by introspection so that it follows whatever the model says.

`to_data` writes only what differs from the defaults, never an ``origin``, and always a
discriminating ``kind``. `from_data` is strict (unknown keys are errors: the YAML format
is our own) and reports every problem into `Diagnostics` at the place of the offending
value, given a `Source` that knows where each value came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import ipaddress
import types
import typing
from collections.abc import Callable
from typing import Any, Protocol

from director.config.errors import Diagnostics

ORIGIN = "origin"
KIND = "kind"
# A tuple of (name, origin) records: where each key of the object was written.
FIELD_ORIGINS = "field_origins"

# A path is a linked list of (parent path, key) pairs, rendered only when a problem is
# reported: building strings for every value would cost more than the decoding itself.
PathLink = tuple[Any, "str | int"] | None


class Source(Protocol):
    """Where the values of a data tree came from; ``container`` None means the root."""

    def origin(self, container: object | None, key: object) -> str:
        """The ``FILE:LINE:COL`` of the value ``container[key]``."""
        ...

    def key_origin(self, container: object, key: object) -> str:
        """The ``FILE:LINE:COL`` of the key itself in a mapping."""
        ...

    def key_origins(self, container: object) -> list[tuple[object, str]]:
        """(key, origin of its value) for every key of a mapping, in order."""
        ...

    def text(self, container: object | None, key: object) -> str | None:
        """A plain scalar as written, for one that was not read as a string (1.10,
        0123, yes); None when unknown."""
        ...


class NoSource:
    """The source of data that has no file behind it (JSON given as objects, tests)."""

    def origin(self, container: object | None, key: object) -> str:
        return ""

    def key_origin(self, container: object, key: object) -> str:
        return ""

    def key_origins(self, container: object) -> list[tuple[object, str]]:
        return []

    def text(self, container: object | None, key: object) -> str | None:
        return None


def render_path(path: PathLink) -> str:
    keys: list[str | int] = []
    while path is not None:
        path, key = path
        keys.append(key)
    out = ""
    for key in reversed(keys):
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else key
    return out


def data_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a model class that are configuration data, ``kind`` first.

    Fields that equality ignores (``origin``, ``field_origins``: where things were
    written) and fields that ``__init__`` does not take are not data.
    """
    fields = [f for f in dataclasses.fields(cls)
              if f.init and f.compare and f.name != ORIGIN]
    fields.sort(key=lambda f: f.name != KIND)
    return fields


# ---------------------------------------------------------------------------------------
# Encoding


def to_data(obj: object) -> Any:
    """The plain-data form of a model object (see the module docstring)."""
    encoder = _ENCODERS.get(type(obj))
    if encoder is None:
        encoder = _encoder_for(type(obj))
    return encoder(obj)


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    str: lambda v: v,
    int: lambda v: v,
    float: lambda v: v,
    bool: lambda v: v,
    type(None): lambda v: v,
}


def _encoder_for(cls: type) -> Callable[[Any], Any]:
    encoder: Callable[[Any], Any]
    if dataclasses.is_dataclass(cls):
        encoder = _dataclass_encoder(cls)
    elif issubclass(cls, enum.Enum):
        def encoder(v):
            return to_data(v.value)
    elif issubclass(cls, _IP_TYPES):
        encoder = str
    elif issubclass(cls, (tuple, list)):
        def encoder(v):
            return [to_data(item) for item in v]
    elif issubclass(cls, (set, frozenset)):
        def encoder(v):
            return sorted((to_data(item) for item in v), key=repr)
    elif issubclass(cls, dict):
        def encoder(v):
            return {str(k): to_data(item) for k, item in v.items()}
    elif issubclass(cls, bool):
        encoder = bool
    elif issubclass(cls, str):
        encoder = str
    elif issubclass(cls, int):
        encoder = int
    elif issubclass(cls, float):
        encoder = float
    else:
        raise TypeError(f"cannot encode {cls.__qualname__} as configuration data")
    _ENCODERS[cls] = encoder
    return encoder


def _dataclass_encoder(cls: type) -> Callable[[Any], dict]:
    plan: list[tuple[str, bool, Any]] = []  # (name, always written, default)
    for f in data_fields(cls):
        default = default_of(f)
        always = default is dataclasses.MISSING or f.name == KIND
        plan.append((f.name, always, default))

    def encode(obj: object) -> dict:
        out = {}
        for name, always, default in plan:
            value = getattr(obj, name)
            if always or type(value) is not type(default) or value != default:
                out[name] = to_data(value)
        return out

    return encode


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# ---------------------------------------------------------------------------------------
# Decoding


def from_data(cls: Any, data: Any, diag: Diagnostics, source: Source | None = None) -> Any:
    """Build a ``cls`` (any supported type, normally a model dataclass) from plain data.

    Returns None after reporting into ``diag`` when the data is not valid. ``origin``
    fields of the objects built are set from ``source``.
    """
    decoder = _decoder(cls)
    context = _Context(diag, source or NoSource())
    try:
        result = decoder(context, data, None, None, None)
    except RecursionError:
        diag.error(context.source.origin(None, None), "configuration nested too deeply")
        return None
    return None if result is _INVALID else result


class _Invalid:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()
INVALID: Any = _INVALID  # a value already reported as bad: decoders pass it on silently


class _Mismatch(Exception):
    """A scalar did not convert; carries what was expected."""


class _Context:
    __slots__ = ("diag", "source")

    def __init__(self, diag: Diagnostics, source: Source):
        self.diag = diag
        self.source = source

    def error(self, container: object | None, key: object, path: PathLink, message: str,
              at_key: bool = False) -> None:
        origin = (self.source.key_origin(container, key) if at_key
                  else self.source.origin(container, key))
        where = render_path(path)
        self.diag.error(origin, f"{where}: {message}" if where else message)

    def got(self, value: object, container: object | None, key: object) -> str:
        if isinstance(value, dict):
            return "a mapping"
        if isinstance(value, list | tuple):
            return "a list"
        if isinstance(value, str):
            return repr(value if len(value) <= 60 else value[:57] + "...")
        return self.source.text(container, key) or _plain_text(value)


def _plain_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# A decoder: (context, value, container, key, path) -> decoded value or _INVALID after a
# report. A converter, for scalars: (value, text) -> converted value or raise _Mismatch;
# text is the scalar as written, None when unknown, _UNLOOKED before it was looked up
# (most values convert without it, and looking it up costs).
_UNLOOKED: Any = object()
Decoder = Callable[[_Context, Any, Any, Any, PathLink], Any]
Converter = Callable[[Any, "str | None"], Any]

_IP_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
             ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network)

_DECODERS: dict[Any, Decoder] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _decoder(tp: Any) -> Decoder:
    decoder = _DECODERS.get(tp)
    if decoder is None:
        decoder = _build_decoder(tp)
        _DECODERS[tp] = decoder
    return decoder


def type_hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a dataclass (cached)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _build_decoder(tp: Any) -> Decoder:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _DataclassDecoder(tp).decode
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(tp)
    if origin in (tuple, list, set, frozenset):
        return _sequence_decoder(tp, origin)
    if origin is dict:
        return _dict_decoder(tp)
    return _scalar_decoder(_converter(tp), describe(tp), _as_is([tp]))


# Types whose values a scalar type takes as they are: the common case, decoded at once
# (not float: it must be finite).
_AS_IS = {str: {str}, int: {int}, bool: {bool}, type(None): {type(None)}}


def _as_is(members: list[Any]) -> frozenset[type]:
    taken: set[type] = set()
    for member in members:
        taken |= _AS_IS.get(member, set())
    return frozenset(taken)


def _scalar_decoder(convert: Converter, expected: str,
                    as_is: frozenset[type] = frozenset()) -> Decoder:
    def decode(ctx: _Context, value: Any, container: Any, key: Any, path: PathLink) -> Any:
        if type(value) in as_is:
            return value
        try:
            return convert(value, _UNLOOKED)
        except _Mismatch:
            pass
        try:
            return convert(value, ctx.source.text(container, key))
        except _Mismatch as mismatch:
            if value is _INVALID:
                return _INVALID
            detail = f" ({mismatch})" if str(mismatch) else ""
            ctx.error(container, key, path,
                      f"expected {expected}, got {ctx.got(value, container, key)}{detail}")
            return _INVALID
    return decode


def _converter(tp: Any) -> Converter:
    if tp is str:
        return _to_str
    if tp is bool:
        return _to_bool
    if tp is int:
        return _to_int
    if tp is float:
        return _to_float
    if tp is type(None):
        return _to_none
    if typing.get_origin(tp) is typing.Literal:
        return _literal_converter(typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_converter(tp)
    if isinstance(tp, type) and issubclass(tp, _IP_TYPES):
        return _ip_converter(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        converters = [_converter(member) for member in typing.get_args(tp)]
        return _first_of(converters)
    raise TypeError(f"the configuration codec does not support the type {tp!r}")


def _to_str(value: Any, text: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    if text is _UNLOOKED or value is None or isinstance(value, dict | list):
        raise _Mismatch()
    # A plain YAML scalar such as 1234 or 1.10 meant as a string: take it as written.
    if text is not None:
        return text
    if type(value) is int:
        return str(value)
    raise _Mismatch()


def _to_bool(value: Any, text: str | None) -> bool:
    if isinstance(value, bool):
        return value
    raise _Mismatch()


def _to_int(value: Any, text: str | None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _Mismatch()


def _to_float(value: Any, text: str | None) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise _Mismatch("not a finite number")
        return number
    raise _Mismatch()


def _to_none(value: Any, text: str | None) -> None:
    if value is None:
        return None
    raise _Mismatch()


def _literal_converter(options: tuple) -> Converter:
    def convert(value: Any, text: str | None) -> Any:
        for option in options:
            if type(option) is type(value) and option == value:
                return option
        raise _Mismatch()
    return convert


def _enum_converter(cls: type[enum.Enum]) -> Converter:
    by_value = {member.value: member for member in cls}
    by_folded = {str(member.value).lower(): member for member in cls}

    def convert(value: Any, text: str | None) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, dict | list):
            raise _Mismatch()
        member = by_value.get(value) if not isinstance(value, bool) else None
        if member is None and isinstance(value, str):
            member = by_folded.get(value.lower())
        if member is None and isinstance(text, str):
            member = by_folded.get(text.lower())
        if member is None:
            raise _Mismatch()
        return member
    return convert


# Addresses repeat (a real server's is its checkers' too) and parsing them is slow.
_KNOWN_ADDRESSES: dict[type, dict[str, Any]] = {}


def _ip_converter(cls: type) -> Converter:
    known = _KNOWN_ADDRESSES.setdefault(cls, {})

    def convert(value: Any, text: str | None) -> Any:
        address = known.get(value) if type(value) is str else None
        if address is not None:
            return address
        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise _Mismatch()
        try:
            address = cls(value)
        except ValueError as error:
            raise _Mismatch(_ip_reason(error, value)) from None
        if len(known) >= 100_000:
            known.clear()
        known[value] = address
        return address
    return convert


def _ip_reason(error: ValueError, value: str) -> str:
    # ipaddress repeats the value in its messages; keep only the reason when it does.
    message = str(error)
    if "has host bits set" in message:
        return "host bits set"
    if message.startswith(repr(value)) or f"'{value}'" in message:
        return ""
    return message


def _first_of(converters: list[Converter]) -> Converter:
    def convert(value: Any, text: str | None) -> Any:
        detail = ""
        for converter in converters:
            try:
                return converter(value, text)
            except _Mismatch as mismatch:
                detail = detail or str(mismatch)
        raise _Mismatch(detail)
    return convert


def _order_scalar_members(members: list[Any]) -> list[Any]:
    """Try the pickiest scalar types first, so that ``int | str`` keeps 3 an integer."""
    def rank(tp: Any) -> int:
        if tp is type(None):
            return 0
        if tp is bool:
            return 1
        if tp is int:
            return 2
        if tp is float:
            return 3
        if tp is str:
            return 9
        return 5
    return sorted(members, key=rank)


def _union_decoder(tp: Any) -> Decoder:
    members = list(typing.get_args(tp))
    classes = [m for m in members if dataclasses.is_dataclass(m)]
    others = [m for m in members if not dataclasses.is_dataclass(m)]
    containers = [m for m in others if typing.get_origin(m) in (tuple, list, set, frozenset,
                                                                 dict)]
    scalars = _order_scalar_members([m for m in others if m not in containers])
    expected = describe(tp)
    scalar: Decoder | None = (
        _scalar_decoder(_first_of([_converter(m) for m in scalars]), expected,
                        _as_is(scalars))
        if scalars else None)
    if scalar is not None and not classes and not containers:
        return scalar  # it reports mappings and lists as what they are itself
    mapping: Decoder | None = None
    if len(classes) == 1:
        mapping = _decoder(classes[0])
    elif classes:
        mapping = _kind_decoder(classes)
    sequence = next((_decoder(m) for m in containers
                     if typing.get_origin(m) is not dict), None)
    dict_decoder = next((_decoder(m) for m in containers if typing.get_origin(m) is dict),
                        None)
    if mapping is not None and dict_decoder is not None:
        raise TypeError(f"the configuration codec cannot tell apart the members of {tp!r}")

    def decode(ctx: _Context, value: Any, container: Any, key: Any, path: PathLink) -> Any:
        if isinstance(value, dict):
            chosen = mapping or dict_decoder
        elif isinstance(value, list | tuple):
            chosen = sequence
        else:
            chosen = scalar
        if value is _INVALID:
            return _INVALID
        if chosen is None:
            ctx.error(container, key, path,
                      f"expected {expected}, got {ctx.got(value, container, key)}")
            return _INVALID
        return chosen(ctx, value, container, key, path)
    return decode


def kind_of(cls: type) -> str | None:
    """The discriminating ``kind`` of a model class, when it has one."""
    for f in dataclasses.fields(cls):
        if f.name == KIND and isinstance(f.default, str):
            return f.default
    return None


def _kind_decoder(classes: list[type]) -> Decoder:
    by_kind: dict[str, type] = {}
    for cls in classes:
        kind = kind_of(cls)
        if kind is None or kind in by_kind:
            raise TypeError(f"{cls.__qualname__} needs a distinct default for its '{KIND}' "
                            f"field to be one of several classes in a union")
        by_kind[kind] = cls
    kinds = ", ".join(by_kind)
    decoders: dict[str, Decoder] = {}

    def decode(ctx: _Context, value: dict, container: Any, key: Any, path: PathLink) -> Any:
        kind = value.get(KIND)
        if kind is None:
            ctx.error(container, key, path, f"needs a '{KIND}' (one of: {kinds})")
            return _INVALID
        cls = by_kind.get(kind) if isinstance(kind, str) else None
        if cls is None:
            ctx.error(value, KIND, (path, KIND), f"unknown {KIND} {ctx.got(kind, value, KIND)} "
                                                 f"(expected one of: {kinds})")
            return _INVALID
        decoder = decoders.get(kind)
        if decoder is None:
            decoder = decoders[kind] = _decoder(cls)
        return decoder(ctx, value, container, key, path)
    return decode


def _sequence_decoder(tp: Any, origin: type) -> Decoder:
    args = typing.get_args(tp)
    fixed: list[Decoder] | None = None
    item: Decoder | None = None
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        fixed = [_decoder(arg) for arg in args]
    else:
        item = _decoder(args[0]) if args else _decoder(str)
    wrap: Callable[[list], Any] = tuple if origin is tuple else origin

    def decode(ctx: _Context, value: Any, container: Any, key: Any, path: PathLink) -> Any:
        if not isinstance(value, list | tuple):
            if value is not _INVALID:
                ctx.error(container, key, path,
                          f"expected a list, got {ctx.got(value, container, key)}")
            return _INVALID
        if fixed is not None and len(value) != len(fixed):
            ctx.error(container, key, path,
                      f"expected a list of {len(fixed)} items, got {len(value)}")
            return _INVALID
        out = []
        ok = True
        for index, element in enumerate(value):
            decoder = fixed[index] if fixed is not None else item
            result = decoder(ctx, element, value, index, (path, index))
            if result is _INVALID:
                ok = False
            else:
                out.append(result)
        if not ok:
            return _INVALID
        try:
            return wrap(out)
        except TypeError:
            ctx.error(container, key, path, "items cannot form a set")
            return _INVALID
    return decode


def _dict_decoder(tp: Any) -> Decoder:
    args = typing.get_args(tp)
    key_convert = _converter(args[0]) if args else _to_str
    value_decoder = _decoder(args[1]) if args else _decoder(str)

    def decode(ctx: _Context, value: Any, container: Any, key: Any, path: PathLink) -> Any:
        if not isinstance(value, dict):
            if value is not _INVALID:
                ctx.error(container, key, path,
                          f"expected a mapping, got {ctx.got(value, container, key)}")
            return _INVALID
        out = {}
        ok = True
        for name, element in value.items():
            try:
                converted = key_convert(name, None)
            except _Mismatch:
                ctx.error(value, name, (path, name), f"bad key {name!r}", at_key=True)
                ok = False
                continue
            result = value_decoder(ctx, element, value, name, (path, name))
            if result is _INVALID:
                ok = False
            else:
                out[converted] = result
        return out if ok else _INVALID
    return decode


class _DataclassDecoder:
    def __init__(self, cls: type):
        self.cls = cls
        hints = type_hints(cls)
        self.has_origin = False
        self.names: list[str] = []
        self.required: list[str] = []
        self.fields: dict[str, Decoder] = {}
        self.kind = kind_of(cls)
        # The decoders of the fields are looked up on first use: the model may refer to
        # itself, and building every decoder up front would then never end.
        self.types: dict[str, Any] = {}
        self.field_origin: type | None = None  # the record class of field_origins
        for f in dataclasses.fields(cls):
            if f.init and f.name == ORIGIN:
                self.has_origin = True
            elif f.init and f.name == FIELD_ORIGINS:
                record = (typing.get_args(hints[f.name]) or (None,))[0]
                if dataclasses.is_dataclass(record):
                    self.field_origin = record
        self.plain_record = _is_plain_record(self.field_origin)
        for f in data_fields(cls):
            self.names.append(f.name)
            self.types[f.name] = hints[f.name]
            if default_of(f) is dataclasses.MISSING:
                self.required.append(f.name)

    def field_decoder(self, name: str) -> Decoder | None:
        decoder = self.fields.get(name)
        if decoder is None and name in self.types:
            decoder = _decoder(self.types[name])
            self.fields[name] = decoder
        return decoder

    def decode(self, ctx: _Context, value: Any, container: Any, key: Any,
               path: PathLink) -> Any:
        if type(value) is not dict:
            if value is not _INVALID:
                ctx.error(container, key, path,
                          f"expected a mapping, got {ctx.got(value, container, key)}")
            return _INVALID
        kwargs: dict[str, Any] = {}
        ok = True
        fields = self.fields
        if self.kind is not None and KIND in value and value[KIND] != self.kind:
            ctx.error(value, KIND, (path, KIND),
                      f"expected {self.kind!r}, got {ctx.got(value[KIND], value, KIND)}")
            ok = False
        for name, element in value.items():
            decoder = fields.get(name)
            if decoder is None:
                decoder = self.field_decoder(name)
                if decoder is None:
                    self._unknown(ctx, value, name, path)
                    ok = False
                    continue
            result = decoder(ctx, element, value, name, (path, name))
            if result is _INVALID:
                ok = False
            else:
                kwargs[name] = result
        if self.required:
            for name in self.required:
                if name not in value:
                    ctx.error(container, key, path, f"missing required key '{name}'")
                    ok = False
        if not ok:
            return _INVALID
        if self.has_origin:
            kwargs[ORIGIN] = ctx.source.origin(container, key)
        if self.field_origin is not None and value:
            kwargs[FIELD_ORIGINS] = self._field_origins(ctx, value)
        try:
            return self.cls(**kwargs)
        except Exception as error:  # a model's own checks (__post_init__) refused it
            ctx.error(container, key, path, str(error) or type(error).__name__)
            return _INVALID

    def _field_origins(self, ctx: _Context, value: dict) -> tuple:
        record = self.field_origin
        if self.plain_record:
            # What the record's __init__ would do, without its call: there can be a
            # record for every key of every server.
            new, set_field = object.__new__, object.__setattr__
            records = []
            for name, origin in ctx.source.key_origins(value):
                entry = new(record)
                set_field(entry, "name", name)
                set_field(entry, "origin", origin)
                records.append(entry)
            return tuple(records)
        return tuple([record(name=name, origin=origin)
                      for name, origin in ctx.source.key_origins(value)])

    def _unknown(self, ctx: _Context, value: dict, name: Any, path: PathLink) -> None:
        hint = ""
        if isinstance(name, str):
            close = difflib.get_close_matches(name, self.names, n=1)
            if close:
                hint = f" (did you mean '{close[0]}'?)"
        ctx.error(value, name, path, f"unknown key {str(name)!r}{hint}", at_key=True)


def _is_plain_record(cls: Any) -> bool:
    """A dataclass of just ``name`` and ``origin``, whose __init__ only stores them."""
    return (dataclasses.is_dataclass(cls) and not hasattr(cls, "__post_init__")
            and [f.name for f in dataclasses.fields(cls)] == ["name", "origin"])


# ---------------------------------------------------------------------------------------
# Descriptions, shared by the error messages and the schema document


_IP_NAMES = {
    ipaddress.IPv4Address: "an IPv4 address",
    ipaddress.IPv6Address: "an IPv6 address",
    ipaddress.IPv4Interface: "an IPv4 address with optional /prefix",
    ipaddress.IPv6Interface: "an IPv6 address with optional /prefix",
    ipaddress.IPv4Network: "an IPv4 network",
    ipaddress.IPv6Network: "an IPv6 network",
}
_IP_PAIRS = {
    frozenset({ipaddress.IPv4Address, ipaddress.IPv6Address}): "an IP address",
    frozenset({ipaddress.IPv4Interface, ipaddress.IPv6Interface}):
        "an IP address with optional /prefix",
    frozenset({ipaddress.IPv4Network, ipaddress.IPv6Network}): "an IP network",
}


def describe(tp: Any) -> str:
    """A short English description of what a value of type ``tp`` must be."""
    if tp is str:
        return "a string"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"
    if tp in _IP_NAMES:
        return _IP_NAMES[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of: " + ", ".join(str(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (tuple, list, set, frozenset):
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin in (typing.Union, types.UnionType):
        members = list(typing.get_args(tp))
        optional = type(None) in members
        members = [m for m in members if m is not type(None)]
        ips = frozenset(m for m in members if m in _IP_NAMES)
        if ips in _IP_PAIRS:
            members = [m for m in members if m not in ips]
            names = [_IP_PAIRS[ips]] + [describe(m) for m in members]
        else:
            names = [describe(m) for m in members]
        if optional:
            names.append("null")
        names = list(dict.fromkeys(names))
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return getattr(tp, "__name__", repr(tp))
