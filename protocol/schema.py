"""Typed records on the wire: dataclasses whose fields are checked on decode.

A record class is a frozen, slotted dataclass decorated with ``@record``. From
its annotations we compile, once, a list of per-field converters; decoding a
map is then one loop over that list. Supported field types: ``str``, ``int``,
``float``, ``bool``, ``bytes``, ``Any``, ``Literal[...]``, a ``StrEnum`` (a plain
string on the wire, a member once decoded), ``X | None``,
``tuple[X, ...]``, ``dict[str, Any]``, ``dict[str, R]`` (R a record) and other
records. ``Annotated[X, MaxLen(n)]`` bounds a string, bytes, array or map to ``n``
items (the guest's output travels in results: the decoder is the check). A field
with a default may be missing; unknown extra keys are ignored (forward
compatibility). A record declared ``@record(omit_none=True)`` leaves its ``None``
fields out when encoded (results: a key is present only when it is known).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, overload

from protocol.errors import InvalidMessage

Converter = Callable[[Any, str], Any]
R = TypeVar("R")

_MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    key: str  # the wire key: the name, or ``field(metadata={"wire": ...})`` (a keyword)
    convert: Converter
    required: bool
    default: Any
    factory: bool  # ``default`` is a default_factory, called for each decode
    encode: Callable[[Any], Any] | None  # None: the value is already msgpack-native


class _Compiled:
    __slots__ = ("fields", "record_cls")

    def __init__(self, record_cls: type, fields: list[_FieldSpec]) -> None:
        self.record_cls = record_cls
        self.fields = fields


_COMPILED: dict[type, _Compiled] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class MaxLen:
    """``Annotated[X, MaxLen(n)]``: at most ``n`` characters, bytes, items or pairs."""

    n: int


@overload
def record(cls: type[R], /) -> type[R]: ...
@overload
def record(*, omit_none: bool = ...) -> Callable[[type[R]], type[R]]: ...
def record(cls: Any = None, /, *, omit_none: bool = False) -> Any:
    """Register a dataclass as a wire record (compiled lazily on first use).

    ``@record(omit_none=True)``: fields whose value is ``None`` are left out of
    the encoded map (and a missing key decodes to the field's default).
    """

    def register(c: type[R]) -> type[R]:
        if not dataclasses.is_dataclass(c):
            raise TypeError(f"{c.__name__} must be a dataclass")
        c.__pyti_record__ = True  # type: ignore[attr-defined]
        c.__pyti_omit_none__ = omit_none  # type: ignore[attr-defined]
        return c

    return register if cls is None else register(cls)


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and getattr(tp, "__pyti_record__", False) is True


def _compile(cls: type) -> _Compiled:
    compiled = _COMPILED.get(cls)
    if compiled is not None:
        return compiled
    hints = typing.get_type_hints(cls, include_extras=True)
    specs: list[_FieldSpec] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if get_origin(tp) is ClassVar:
            continue
        default: Any = _MISSING
        factory = False
        if f.default is not _MISSING:
            default = f.default
        elif f.default_factory is not _MISSING:
            default, factory = f.default_factory, True
        specs.append(
            _FieldSpec(
                name=f.name,
                key=str(f.metadata.get("wire", f.name)),
                convert=_converter(tp),
                required=default is _MISSING,
                default=default,
                factory=factory,
                encode=_encoder(tp),
            )
        )
    compiled = _Compiled(cls, specs)
    _COMPILED[cls] = compiled
    return compiled


def _fail(path: str, expected: str, value: Any) -> InvalidMessage:
    return InvalidMessage(f"field {path!r} must be {expected}, got {type(value).__name__}")


def _converter(tp: Any) -> Converter:
    if get_origin(tp) is Annotated:
        return _bounded(_converter(tp.__origin__), tp.__metadata__)
    if tp is Any:
        return lambda v, path: v
    if tp is str:

        def conv_str(v: Any, path: str) -> Any:
            if type(v) is not str:
                raise _fail(path, "a string", v)
            return v

        return conv_str
    if tp is bool:

        def conv_bool(v: Any, path: str) -> Any:
            if type(v) is not bool:
                raise _fail(path, "a boolean", v)
            return v

        return conv_bool
    if tp is int:

        def conv_int(v: Any, path: str) -> Any:
            if type(v) is not int:
                raise _fail(path, "an integer", v)
            return v

        return conv_int
    if tp is float:

        def conv_float(v: Any, path: str) -> Any:
            t = type(v)
            if t is float:
                return v
            if t is int:
                return float(v)
            raise _fail(path, "a number", v)

        return conv_float
    if tp is bytes:

        def conv_bytes(v: Any, path: str) -> Any:
            if type(v) is not bytes:
                raise _fail(path, "bytes", v)
            return v

        return conv_bytes
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _enum_converter(tp)
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Literal:
        allowed = frozenset(args)
        shown = "|".join(str(a) for a in args)

        def conv_literal(v: Any, path: str) -> Any:
            if not isinstance(v, str | int) or v not in allowed:
                raise InvalidMessage(f"field {path!r} must be one of {shown}, got {v!r:.40}")
            return v

        return conv_literal
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1 or len(args) != 2:
            raise TypeError(f"unsupported union {tp!r}: only X | None")
        inner = _converter(non_none[0])
        return lambda v, path: None if v is None else inner(v, path)
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple {tp!r}: only tuple[X, ...]")
        item = _converter(args[0])

        def conv_tuple(v: Any, path: str) -> Any:
            if type(v) is not tuple and type(v) is not list:
                raise _fail(path, "an array", v)
            return tuple(item(x, path) for x in v)

        return conv_tuple
    if origin is dict and args[0] is str and _is_record(args[1]):
        value_cls = args[1]

        def conv_record_map(v: Any, path: str) -> Any:
            if type(v) is not dict:
                raise _fail(path, "a map", v)
            for k in v:
                if type(k) is not str:
                    raise _fail(path, "a map with string keys", k)
            return {k: decode_record(value_cls, x, f"{path}.{k}") for k, x in v.items()}

        return conv_record_map
    if origin is dict:
        if args[0] is not str or args[1] is not Any:
            raise TypeError(f"unsupported dict {tp!r}: only dict[str, Any] or dict[str, R]")

        def conv_dict(v: Any, path: str) -> Any:
            if type(v) is not dict:
                raise _fail(path, "a map", v)
            return v

        return conv_dict
    if _is_record(tp):
        return lambda v, path: decode_record(tp, v, path)
    raise TypeError(f"unsupported field type {tp!r}")


def _bounded(inner: Converter, metadata: tuple[Any, ...]) -> Converter:
    limits = [m.n for m in metadata if isinstance(m, MaxLen)]
    if not limits:
        return inner
    limit = min(limits)

    def conv_bounded(v: Any, path: str) -> Any:
        if isinstance(v, str | bytes | tuple | list | dict) and len(v) > limit:
            raise InvalidMessage(f"field {path!r} is longer than {limit} (got {len(v)})")
        return inner(v, path)

    return conv_bounded


def _enum_converter(enum: type[StrEnum]) -> Converter:
    members = {m.value: m for m in enum}
    shown = "|".join(members)

    def conv_enum(v: Any, path: str) -> Any:
        member = members.get(v) if type(v) is str else None
        if member is None:
            raise InvalidMessage(f"field {path!r} must be one of {shown}, got {v!r:.40}")
        return member

    return conv_enum


def _encoder(tp: Any) -> Callable[[Any], Any] | None:
    if get_origin(tp) is Annotated:
        return _encoder(tp.__origin__)
    if _is_record(tp):
        return encode_record
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        inner = _encoder(next(a for a in args if a is not type(None)))
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if origin is tuple and _is_record(args[0]):
        return lambda v: [encode_record(x) for x in v]
    if origin is dict and _is_record(args[1]):
        return lambda v: {k: encode_record(x) for k, x in v.items()}
    return None


_INLINE_CHECKS: dict[Any, tuple[str, str]] = {
    str: ("type(v) is not str", "a string"),
    int: ("type(v) is not int", "an integer"),
    bool: ("type(v) is not bool", "a boolean"),
    bytes: ("type(v) is not bytes", "bytes"),
}


def _generate(cls: type) -> tuple[Callable[[Any, str], Any], Callable[[Any], dict[str, Any]]]:
    """Generate a straight-line decoder and encoder for ``cls``.

    Decoding is the hot path of the master (every event of every job), so the
    generic per-field loop is compiled into one function per record class.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    omit_none = getattr(cls, "__pyti_omit_none__", False)
    compiled = _compile(cls)
    env: dict[str, Any] = {
        "cls": cls,
        "MISSING": _MISSING,
        "fail": _fail,
        "missing": _missing,
        "float": float,
    }
    dec = [
        "def decode(obj, path):",
        "    if type(obj) is not dict:",
        "        raise fail(path or cls.__name__, 'a map', obj)",
        "    get = obj.get",
    ]
    enc_items = []
    args = []
    for i, spec in enumerate(compiled.fields):
        name = spec.key  # the wire key; spec.name is the attribute
        attr = spec.name
        tp = hints[attr]
        env[f"conv{i}"] = spec.convert
        env[f"default{i}"] = spec.default
        dec.append(f"    v = get({name!r}, MISSING)")
        dec.append("    if v is MISSING:")
        if spec.required:
            dec.append(f"        raise missing(path, {name!r})")
        elif spec.factory:
            dec.append(f"        v = default{i}()")
        else:
            dec.append(f"        v = default{i}")
        dec.append("    else:")
        if tp in _INLINE_CHECKS:
            check, expected = _INLINE_CHECKS[tp]
            dec.append(f"        if {check}:")
            dec.append(
                f"            raise fail(path + {'.' + name!r} if path else {name!r}, "
                f"{expected!r}, v)"
            )
        elif tp is float:
            dec.append("        if type(v) is not float:")
            dec.append(f"            v = conv{i}(v, path + {'.' + name!r} if path else {name!r})")
        elif get_origin(tp) is tuple and _is_record(get_args(tp)[0]):
            # Arrays of records (event batches) are the hot path: call the
            # nested generated decoder directly.
            env[f"sub{i}"] = _codec(get_args(tp)[0])[0]
            dec.append("        if type(v) is not tuple and type(v) is not list:")
            dec.append(
                f"            raise fail(path + {'.' + name!r} if path else {name!r}, "
                "'an array', v)"
            )
            dec.append(f"        p = path + {'.' + name!r} if path else {name!r}")
            dec.append(f"        v = tuple([sub{i}(x, p) for x in v])")
        else:
            dec.append(f"        v = conv{i}(v, path + {'.' + name!r} if path else {name!r})")
        dec.append(f"    a{i} = v")
        args.append(f"{attr}=a{i}")
        if spec.encode is None:
            enc_items.append(f"{name!r}: r.{attr}")
        elif get_origin(tp) is tuple and _is_record(get_args(tp)[0]):
            env[f"enc{i}"] = _codec(get_args(tp)[0])[1]
            enc_items.append(f"{name!r}: [enc{i}(x) for x in r.{attr}]")
        else:
            env[f"enc{i}"] = spec.encode
            enc_items.append(f"{name!r}: enc{i}(r.{attr})")
    dec.append(f"    return cls({', '.join(args)})")
    if omit_none:
        body = ["def encode(r):", "    out = {}"]
        for spec, item in zip(compiled.fields, enc_items, strict=True):
            key, _, value = item.partition(": ")
            body.append(f"    if r.{spec.name} is not None:")
            body.append(f"        out[{key}] = {value}")
        body.append("    return out")
        source = "\n".join(dec) + "\n\n" + "\n".join(body) + "\n"
    else:
        source = "\n".join(dec) + "\n\ndef encode(r):\n    return {" + ", ".join(enc_items) + "}\n"
    exec(compile(source, f"<pyti record {cls.__name__}>", "exec"), env)  # noqa: S102 - generated from our own annotations
    return env["decode"], env["encode"]


def _missing(path: str, name: str) -> InvalidMessage:
    return InvalidMessage(f"missing field {path + '.' + name if path else name!r}")


_GENERATED: dict[type, tuple[Callable[[Any, str], Any], Callable[[Any], dict[str, Any]]]] = {}


def _codec(cls: type) -> tuple[Callable[[Any, str], Any], Callable[[Any], dict[str, Any]]]:
    codec = _GENERATED.get(cls)
    if codec is None:
        codec = _GENERATED[cls] = _generate(cls)
    return codec


def decoder(cls: type[R]) -> Callable[[Any, str], R]:
    """The generated decoder of a record class: ``decoder(cls)(obj, path)``."""
    return _codec(cls)[0]


def decode_record(cls: type[R], obj: Any, path: str = "") -> R:
    """Build ``cls`` from a decoded map, or raise ``InvalidMessage`` naming the field."""
    result: R = _codec(cls)[0](obj, path)
    return result


def encode_record(rec: Any) -> dict[str, Any]:
    """The msgpack-native map of a record (nested records become maps)."""
    return _codec(type(rec))[1](rec)
