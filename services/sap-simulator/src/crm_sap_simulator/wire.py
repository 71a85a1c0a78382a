"""OData V2 on the wire as S/4HANA writes it: values, keys, ETags, the `$filter` subset."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from crm_sap_simulator.schema import EntitySet, Prop

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_wire(prop: Prop, value: Any) -> Any:
    if value is None:
        return None
    if prop.type == "Edm.Decimal":
        return str(value)
    if prop.type in ("Edm.DateTime", "Edm.DateTimeOffset"):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        ms = (value - EPOCH) // dt.timedelta(milliseconds=1)
        return f"/Date({ms}+0000)/" if prop.type == "Edm.DateTimeOffset" else f"/Date({ms})/"
    if prop.type == "Edm.Time":
        seconds = int(value.total_seconds())
        return f"PT{seconds // 3600:02d}H{seconds % 3600 // 60:02d}M{seconds % 60:02d}S"
    return value


_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_TIME = re.compile(r"^PT(\d+)H(\d+)M(\d+)S$")


def from_wire(prop: Prop, value: Any) -> Any:
    """A client's JSON value, typed; ValueError when it does not fit the property."""
    if value is None:
        return None
    if prop.type == "Edm.String":
        if not isinstance(value, str):
            raise ValueError(f"{prop.name} must be a string")
        if prop.max_length is not None and len(value) > prop.max_length:
            raise ValueError(f"{prop.name} is longer than {prop.max_length} characters")
        return value
    if prop.type == "Edm.Decimal":
        d = Decimal(str(value))
        if prop.scale is not None and d.as_tuple().exponent < -prop.scale:  # type: ignore[operator]
            raise ValueError(f"{prop.name} has more than {prop.scale} decimals")
        return d
    if prop.type in ("Edm.DateTime", "Edm.DateTimeOffset"):
        m = _DATE.match(str(value))
        if m:
            return EPOCH + dt.timedelta(milliseconds=int(m.group(1)))
        parsed = dt.datetime.fromisoformat(str(value))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if prop.type == "Edm.Time":
        m = _TIME.match(str(value))
        if not m:
            raise ValueError(f"{prop.name} is not an Edm.Time duration")
        return dt.timedelta(hours=int(m.group(1)), minutes=int(m.group(2)), seconds=int(m.group(3)))
    if prop.type == "Edm.Boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{prop.name} must be a boolean")
        return value
    return value


def etag_of(es: EntitySet, row: dict[str, Any]) -> str | None:
    p = es.etag_prop
    if p is None:
        return None
    value = row.get(p.name)
    if p.type == "Edm.DateTimeOffset":
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"  # 7 fractional digits, as SAP writes them
        return f"W/\"datetimeoffset'{quote(text, safe='')}'\""
    return f"W/\"'{value}'\""


def key_predicate(es: EntitySet, row: dict[str, Any]) -> str:
    if len(es.keys) == 1:
        return f"('{quote(str(row[es.keys[0]]), safe='')}')"
    return "(" + ",".join(f"{k}='{quote(str(row[k]), safe='')}'" for k in es.keys) + ")"


def parse_key(es: EntitySet, text: str) -> tuple[str, ...]:
    inner = text.strip()[1:-1]
    if "=" not in inner:
        values = {es.keys[0]: _unquote(inner)}
    else:
        values = {}
        for part in _split_top(inner, ","):
            name, _, raw = part.partition("=")
            values[name.strip()] = _unquote(raw.strip())
    if set(values) != set(es.keys):
        raise ValueError(f"key of {es.name} is {', '.join(es.keys)}")
    return tuple(values[k] for k in es.keys)


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


# $filter -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<typed>(?:datetimeoffset|datetime|guid|time)'[^']*')"
                    r"|(?P<num>-?\d+(?:\.\d+)?[mMdD]?)|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_/]*))")

Predicate = Callable[[dict[str, Any]], bool]


class FilterError(ValueError):
    pass


def parse_filter(es: EntitySet, text: str) -> Predicate:
    tokens = _tokenize(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise FilterError("unexpected end of $filter")
        pos += 1
        return tokens[pos - 1]

    def expect(value: str) -> None:
        _, tok = take()
        if tok != value:
            raise FilterError(f"expected {value!r} in $filter, got {tok!r}")

    def operand() -> Callable[[dict[str, Any]], Any]:
        kind, tok = take()
        if kind == "word" and tok in ("true", "false"):
            return lambda row, v=(tok == "true"): v
        if kind == "word" and tok == "null":
            return lambda row: None
        if kind == "word":
            prop = es.prop(tok) if tok in es.names else None
            if prop is None:
                raise FilterError(f"property {tok} not found in {es.type_name}")
            return lambda row, n=tok: row.get(n)
        value = literal(kind, tok)
        return lambda row, v=value: v

    def literal(kind: str, tok: str) -> Any:
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return Decimal(tok.rstrip("mMdD"))
        if kind == "typed":
            prefix, _, raw = tok.partition("'")
            raw = raw[:-1]
            if prefix in ("datetime", "datetimeoffset"):
                parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
            return raw
        raise FilterError(f"unexpected {tok!r} in $filter")

    def primary() -> Predicate:
        tok = peek()
        if tok is None:
            raise FilterError("empty $filter")
        if tok[1] == "(":
            take()
            inner = disjunction()
            expect(")")
            return inner
        if tok[1] == "not":
            take()
            inner = primary()
            return lambda row: not inner(row)
        if tok[1] in ("substringof", "startswith", "endswith"):
            fn = take()[1]
            expect("(")
            a = operand()
            expect(",")
            b = operand()
            expect(")")
            call: Predicate
            if fn == "substringof":
                call = lambda row: str(a(row) or "") in str(b(row) or "")  # noqa: E731
            elif fn == "startswith":
                call = lambda row: str(a(row) or "").startswith(str(b(row) or ""))  # noqa: E731
            else:
                call = lambda row: str(a(row) or "").endswith(str(b(row) or ""))  # noqa: E731
            nxt = peek()
            if nxt is not None and nxt[1] == "eq":
                take()
                want = operand()
                return lambda row: call(row) == want(row)
            return call
        left = operand()
        op = take()[1]
        right = operand()
        return _compare(left, op, right)

    def conjunction() -> Predicate:
        result = primary()
        while (tok := peek()) is not None and tok[1] == "and":
            take()
            rhs = primary()
            result = (lambda a, b: lambda row: a(row) and b(row))(result, rhs)
        return result

    def disjunction() -> Predicate:
        result = conjunction()
        while (tok := peek()) is not None and tok[1] == "or":
            take()
            rhs = conjunction()
            result = (lambda a, b: lambda row: a(row) or b(row))(result, rhs)
        return result

    predicate = disjunction()
    if pos != len(tokens):
        raise FilterError(f"unexpected {tokens[pos][1]!r} in $filter")
    return predicate


def _compare(left: Callable[[dict[str, Any]], Any], op: str, right: Callable[[dict[str, Any]], Any]) -> Predicate:
    def norm(v: Any) -> Any:
        if isinstance(v, dt.datetime) and v.tzinfo is None:
            return v.replace(tzinfo=dt.UTC)
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
        return v

    def check(row: dict[str, Any]) -> bool:
        a, b = norm(left(row)), norm(right(row))
        if op == "eq":
            return bool(a == b)
        if op == "ne":
            return bool(a != b)
        if a is None or b is None:
            return False
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
        if op == "lt":
            return bool(a < b)
        if op == "le":
            return bool(a <= b)
        raise FilterError(f"operator {op} is not supported")

    return check


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot parse $filter at {text[pos:]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens
