"""The operations a campaign template may run, bounded: what each may build is sized before
it runs (widths, repeat counts, joins, formats), filters and calls check the deadline, loops
check it each time round, and literals are weighed when built. Pure; no I/O.
"""

from __future__ import annotations

import re
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import markup_join, str_join

from listmgr.mail.budget import CONTAINERS, BudgetExceeded, render_state, spend, tick, weigh

MAX_RANGE = 10_000  # items range() may give
MAX_ITEMS = 20_000  # items a filter that loops in Python may take (sort, unique, ...)
MAX_WRAP = 100_000  # characters a filter that loops in Python per word may take
MAX_INT_BITS = 4_096  # numbers stay below 2**4096 (1,234 digits)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.?)")
_DIGITS = re.compile(r"\d+")


def _number(text: str) -> int:
    if len(text) > 9:
        raise BudgetExceeded("a width in a format may have at most 9 digits")
    return int(text or 0)


def printf_size(fmt: str, args: Any) -> int:
    """Characters `fmt % args` may have at most."""
    extra = 0
    for match in _PRINTF.finditer(fmt):
        width, precision = match.group(1), match.group(2) or ""
        if width == "*" or precision == "*":
            raise BudgetExceeded("a * width in a format is not available")
        extra += _number(width) + _number(precision)
    return len(fmt) + extra + weigh(args)


def format_size(fmt: str, args: Any, kwargs: Any) -> int:
    """Characters `fmt.format(*args, **kwargs)` may have at most."""
    extra = 0
    for _text, _field, spec, _conversion in string.Formatter().parse(fmt):
        if spec and "{" in spec:
            raise BudgetExceeded("a width taken from an argument is not available in a format")
        extra += sum(_number(d) for d in _DIGITS.findall(spec or ""))
    return len(fmt) + extra + weigh((args, kwargs))


def _widen(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    spend(max(len(s), _int(args[0] if args else next(iter(kwargs.values()), 0))))
    return args


def _expandtabs(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    size = _int(args[0] if args else kwargs.get("tabsize", 8))
    spend(len(s) + s.count("\t" if isinstance(s, str) else b"\t") * max(0, size))
    return args


def _replace(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if len(args) >= 2 and isinstance(args[0], type(s)) and isinstance(args[1], type(s)):
        old, new = args[0], args[1]
        times = s.count(old) if old else len(s) + 1
        count = _int(args[2]) if len(args) > 2 else _int(kwargs.get("count", -1))
        if count >= 0:
            times = min(times, count)
        spend(len(s) + times * max(0, len(new) - len(old)))
    return args


def _join(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = list(args[0]) if len(args) == 1 else []
    if len(items) > MAX_ITEMS * 10:
        raise BudgetExceeded("too many items to join")
    spend(
        sum(len(x) for x in items if isinstance(x, (str, bytes))) + len(s) * max(0, len(items) - 1)
    )
    return (items,) if len(args) == 1 else args


def _refuse(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    raise SecurityError("translate and maketrans are not available in templates")


def _format(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    # Jinja 3.1.5 and later hand str.format to wrap_str_format before any call gets here.
    spend(format_size(s, args, kwargs))
    return args


# str/bytes methods that can build more than they are given, and their checks.
METHOD_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]] = {
    "center": _widen,
    "ljust": _widen,
    "rjust": _widen,
    "zfill": _widen,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "join": _join,
    "format": _format,
    "format_map": _format,
    "translate": _refuse,
    "maketrans": _refuse,
}
METHOD_TYPES = (types.BuiltinMethodType, types.MethodType)


def _filter_check(name: str) -> Callable[..., None] | None:
    """The check run before filter `name` (value first, then its arguments)."""

    def center(value: Any, width: Any = 80, *a: Any, **k: Any) -> None:
        spend(max(weigh(value), _int(width)))

    def indent(value: Any, width: Any = 4, *a: Any, **k: Any) -> None:
        size = weigh(value)
        pad = len(width) if isinstance(width, str) else _int(width)
        spend(size + (str(value).count("\n") + 1) * max(0, pad))

    def wordwrap(value: Any, width: Any = 79, *a: Any, **k: Any) -> None:
        size = weigh(value, MAX_WRAP)
        wrap = k.get("wrapstring") or (a[1] if len(a) > 1 else None) or "\n"
        lines = size // max(1, _int(width)) + size // 2 + 1
        spend(size + lines * len(str(wrap)))

    def fmt(value: Any, *a: Any, **k: Any) -> None:
        spend(printf_size(str(value) if isinstance(value, str) else "", k or a))

    def replace(value: Any, old: Any = "", new: Any = "", count: Any = None, **k: Any) -> None:
        text = str(value) if isinstance(value, str) else ""
        _replace(text, (str(old), str(new), -1 if count is None else count), {})

    def join(value: Any, d: Any = "", *a: Any, **k: Any) -> None:
        items = value if hasattr(value, "__len__") else ()
        if len(items) > MAX_ITEMS:
            raise BudgetExceeded(f"join takes at most {MAX_ITEMS:,} items")
        spend(weigh(items) + len(str(d)) * len(items))

    def batch(value: Any, count: Any = 1, *a: Any, **k: Any) -> None:
        if _int(count) > MAX_ITEMS:
            raise BudgetExceeded(f"batches have at most {MAX_ITEMS:,} items")
        items(value)

    def items(value: Any, *a: Any, **k: Any) -> None:
        if hasattr(value, "__len__") and len(value) > MAX_ITEMS:
            raise BudgetExceeded(f"this filter takes at most {MAX_ITEMS:,} items")

    def total(value: Any, attribute: Any = None, start: Any = 0, **k: Any) -> None:
        if not isinstance(start, (int, float)):
            raise SecurityError("sum adds numbers only")
        items(value)

    def urlize(value: Any, *a: Any, **k: Any) -> None:
        size = weigh(value, MAX_WRAP)
        extra = sum(len(str(x)) for x in list(a) + list(k.values()) if isinstance(x, str))
        spend(size * 2 + (size // 2 + 1) * extra)

    def text(value: Any, *a: Any, **k: Any) -> None:
        weigh(value)

    def pretty(value: Any, *a: Any, **k: Any) -> None:
        weigh(value, MAX_WRAP)

    checks: dict[str, Callable[..., None]] = {
        "center": center,
        "indent": indent,
        "wordwrap": wordwrap,
        "format": fmt,
        "replace": replace,
        "join": join,
        "batch": batch,
        "slice": batch,
        "sum": total,
        "urlize": urlize,
        "pprint": pretty,
        "xmlattr": pretty,
        # these loop in Python per word, character or entity:
        "title": pretty,
        "urlencode": pretty,
        "striptags": pretty,
        "unique": items,
        "groupby": items,
        "sort": items,
        "dictsort": items,
        "min": items,
        "max": items,
        "truncate": text,
    }
    for name_ in (
        "capitalize",
        "e",
        "escape",
        "forceescape",
        "lower",
        "upper",
        "trim",
        "string",
        "tojson",
        "wordcount",
        "safe",
        "filesizeformat",
    ):
        checks[name_] = text
    return checks.get(name)


# Filters that neither build text nor loop (a hot path: left as they are).
UNGUARDED = frozenset(
    {
        "default",
        "d",
        "length",
        "count",
        "first",
        "last",
        "abs",
        "int",
        "float",
        "round",
        "random",
        "attr",
        "items",
    }
)


def guard(kind: str, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that checks the deadline (and, for the risky ones, its arguments)."""
    if kind == "filter" and name in UNGUARDED:
        return func
    check = (
        _filter_check(name)
        if kind == "filter"
        else ((lambda value, *a, **k: weigh(value)) if name in ("lower", "upper") else None)
    )
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    materialize = kind == "filter" and name == "join"  # its size must be known beforehand

    @wraps(func)  # keeps jinja_pass_arg: Jinja passes the context or environment as before
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if check is not None and len(args) > skip:
            if materialize and not hasattr(args[skip], "__len__"):
                args = (*args[:skip], list(args[skip]), *args[skip + 1 :])
            check(*args[skip:], **kwargs)
        result = func(*args, **kwargs)
        if isinstance(result, str):
            spend(len(result))
        elif isinstance(result, CONTAINERS):
            weigh(result)
        return result

    return guarded


def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, with the deadline checked before each."""
    st = render_state
    for item in iterable:
        if time.monotonic() > st.deadline:
            tick()
        yield item


def _joined(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    spend(sum(len(p) if isinstance(p, str) else weigh(p) for p in parts))
    return parts


def sized_markup_join(seq: Iterable[Any]) -> str:
    """`a ~ b` in an HTML part, sized first."""
    return markup_join(_joined(tuple(seq)))


def sized_str_join(seq: Iterable[Any]) -> str:
    """`a ~ b` in a text part, sized first."""
    return str_join(_joined(tuple(seq)))


def bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range is limited to {MAX_RANGE} items")
    return result


def instrument(tree: nodes.Template) -> nodes.Template:
    """Loops check the deadline each time round; list, tuple and dict literals that hold
    values are weighed when built (a literal can repeat a reference without any call)."""

    def wrapped(node: nodes.Node, hook: str) -> nodes.Expr:
        return nodes.Call(
            nodes.EnvironmentAttribute(hook), [node], [], None, None, lineno=node.lineno
        )

    for loop in tree.find_all(nodes.For):
        loop.iter = wrapped(loop.iter, "bounded_iter")
    for parent in list(tree.find_all(nodes.Node)):
        for field in parent.fields:
            value = getattr(parent, field)
            if isinstance(value, list):
                setattr(parent, field, [_weighed(v, wrapped) for v in value])
            else:
                setattr(parent, field, _weighed(value, wrapped))
    return tree


def _weighed(node: Any, wrapped: Callable[[nodes.Node, str], nodes.Expr]) -> Any:
    if isinstance(node, nodes.Tuple) and node.ctx != "load":
        return node
    if isinstance(node, (nodes.List, nodes.Tuple)) and not all(
        isinstance(n, nodes.Const) for n in node.items
    ):
        return wrapped(node, "weighed")
    if isinstance(node, nodes.Dict) and not all(
        isinstance(p.key, nodes.Const) and isinstance(p.value, nodes.Const) for p in node.items
    ):
        return wrapped(node, "weighed")
    return node
