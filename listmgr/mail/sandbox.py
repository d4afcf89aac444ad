"""The sandbox campaign templates run in, and its budget. Pure; no I/O.

Jinja's sandbox keeps a template away from Python's internals, not from the machine: one
`{{ 'a'|center(10**9) }}` allocates gigabytes and three nested loops never end. Here every render
has a deadline and an allowance of characters it may create. The deadline is checked wherever a
template can repeat work (each loop iteration, call, intercepted operator and filter), so a
render that overruns stops within a hair of its budget; sizes are checked *before* anything big
is built (a width, a repeat count, a join), because a single C-level operation cannot be stopped
once it runs. Containers a template builds are weighed (their size as text) so that no
combination of references can be turned into a huge string, comparison or sort.
"""
from __future__ import annotations

import math
import re
import string
import threading
import time
import types
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any, Callable, Iterable, Iterator

from jinja2 import ChainableUndefined, Undefined, nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RANGE = 10_000          # items range() may give
MAX_ITEMS = 20_000          # items a filter that loops in Python may take (sort, unique, ...)
MAX_WRAP = 100_000          # characters wordwrap and urlize may take (they loop per word)
MAX_INT_BITS = 4_096        # numbers stay below 2**4096 (1,234 digits)
WORK_FACTOR = 8             # a render may create this many times its output cap in text
CONTAINERS = (list, tuple, dict, set, frozenset)


class BudgetExceeded(SecurityError):
    """A render used up its time or its allowance of text."""


@dataclass(frozen=True)
class Limits:
    """The budget of one message (or of one save check)."""

    seconds: float = 0.5          # wall-clock time its renders may take together
    output: int = 2_000_000       # characters one rendered part (or any text built) may have


class Budget:
    """What is left of one budget over several renders (the save check renders every part)."""

    __slots__ = ("limits", "seconds", "chars")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.seconds = limits.seconds
        self.chars = limits.output * WORK_FACTOR


class _State(threading.local):
    """The render running on this thread (the class values: none)."""

    active = False
    deadline = math.inf
    seconds = Limits.seconds
    cap = Limits.output
    left = Limits.output * WORK_FACTOR
    total = Limits.output


_state = _State()


def tick() -> None:
    """Stop the render when its time is up."""
    if time.monotonic() > _state.deadline:
        raise BudgetExceeded(f"the template took longer than {_state.seconds:g} s to render "
                             "(a loop that runs too long?)")


def spend(chars: int) -> None:
    """Account for a text of `chars` characters about to be built; refuse it when too big."""
    st = _state
    if chars > st.cap:
        raise BudgetExceeded(f"the template would build a text of {chars:,} characters "
                             f"(at most {st.cap:,})")
    st.left -= chars
    if st.left < 0:
        raise BudgetExceeded(f"the template builds more than {st.cap * WORK_FACTOR:,} "
                             "characters of text in all")


def weigh(value: Any, limit: int | None = None) -> int:
    """About how many characters `value` has as text; refused beyond the cap. Containers are
    walked (shared references count each time: that is what str() and == would do)."""
    cap = _state.cap if limit is None else limit
    size = 0
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            size += len(item) + 2
        elif isinstance(item, dict):
            size += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            size += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, int):
            size += item.bit_length() // 3 + 1
        else:
            size += 8
        if size > cap:
            raise BudgetExceeded(f"a value would be larger than {cap:,} characters as text")
        seen += 1
        if not seen & 1023:
            tick()
    return size


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- the render ------------------------------------------------------------------------------
def _collect(parts: Iterable[str], limit: int) -> str:
    """The parts joined, refused as soon as they exceed `limit` characters."""
    out = []
    size = 0
    for part in parts:
        size += len(part)
        if size > limit:
            raise BudgetExceeded(f"the rendered text is larger than {limit:,} characters")
        out.append(part)
    return "".join(out)


class BudgetTemplate(Template):
    """A template whose every render runs under a budget (the defaults unless given one)."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        if not _state.active:
            return render(self, dict(*args, **kwargs), Budget(Limits()))
        ctx = self.new_context(dict(*args, **kwargs))
        try:
            return _collect(self.root_render_func(ctx), _state.total)
        except Exception:
            self.environment.handle_exception()
        raise AssertionError("unreachable")  # handle_exception always raises


def render(template: Template, context: dict[str, Any], budget: Budget, *,
           output: int | None = None) -> str:
    """Render within what is left of `budget`; `output` caps the whole text (default: the cap
    of one part). Raises BudgetExceeded (a SecurityError) when the budget runs out."""
    st = _state
    if st.active:   # inside another budgeted render: that one governs
        return template.render(context)
    limits = budget.limits
    started = time.monotonic()
    st.active, st.seconds, st.cap, st.left = True, limits.seconds, limits.output, budget.chars
    st.deadline = started + max(0.0, budget.seconds)
    st.total = output or limits.output
    try:
        return template.render(context)
    finally:
        budget.seconds -= time.monotonic() - started
        budget.chars = st.left
        st.active, st.deadline = False, math.inf


# -- what the sandbox checks -----------------------------------------------------------------
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.?)")
_DIGITS = re.compile(r"\d+")


def _number(text: str) -> int:
    if len(text) > 9:
        raise BudgetExceeded("a width in a format is too large")
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
    spend(sum(len(x) for x in items if isinstance(x, (str, bytes)))
          + len(s) * max(0, len(items) - 1))
    return (items,) if len(args) == 1 else args


def _refuse(s: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    raise SecurityError("translate and maketrans are not available in templates")


# str/bytes methods that can build more than they are given, and their checks.
METHOD_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]] = {
    "center": _widen, "ljust": _widen, "rjust": _widen, "zfill": _widen,
    "expandtabs": _expandtabs, "replace": _replace, "join": _join,
    "translate": _refuse, "maketrans": _refuse}
_METHOD_TYPES = (types.BuiltinMethodType, types.MethodType)


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
        "center": center, "indent": indent, "wordwrap": wordwrap, "format": fmt,
        "replace": replace, "join": join, "batch": batch, "slice": batch, "sum": total,
        "urlize": urlize, "pprint": pretty, "xmlattr": pretty,
        "unique": items, "groupby": items, "sort": items, "dictsort": items, "min": items,
        "max": items, "truncate": text}
    for name_ in ("capitalize", "e", "escape", "forceescape", "lower", "upper", "title",
                  "trim", "striptags", "string", "tojson", "urlencode", "wordcount", "safe",
                  "filesizeformat"):
        checks[name_] = text
    return checks.get(name)


def guard(kind: str, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or test that checks the deadline (and, for the risky ones, its arguments)."""
    check = _filter_check(name) if kind == "filter" else (
        (lambda value, *a, **k: weigh(value)) if name in ("lower", "upper") else None)
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    materialize = kind == "filter" and name == "join"   # its size must be known beforehand

    @wraps(func)   # keeps jinja_pass_arg: Jinja passes the context or environment as before
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        if check is not None and len(args) > skip:
            if materialize and not hasattr(args[skip], "__len__"):
                args = (*args[:skip], list(args[skip]), *args[skip + 1:])
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
    st = _state
    for item in iterable:
        if time.monotonic() > st.deadline:
            tick()
        yield item


def _joined(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    spend(sum(len(p) if isinstance(p, str) else weigh(p) for p in parts))
    return parts


def _markup_join(seq: Iterable[Any]) -> str:
    """`a ~ b` in an HTML part, sized first."""
    return markup_join(_joined(tuple(seq)))


def _str_join(seq: Iterable[Any]) -> str:
    """`a ~ b` in a text part, sized first."""
    return str_join(_joined(tuple(seq)))


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range is limited to {MAX_RANGE} items")
    return result


def instrument(tree: nodes.Template) -> nodes.Template:
    """Loops check the deadline each time round; list, tuple and dict literals that hold
    values are weighed when built (a literal can repeat a reference without any call)."""
    def wrapped(node: nodes.Expr, hook: str) -> nodes.Expr:
        return nodes.Call(nodes.EnvironmentAttribute(hook), [node], [], None, None,
                          lineno=node.lineno)

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


def _weighed(node: Any, wrapped: Callable[[nodes.Expr, str], nodes.Expr]) -> Any:
    if isinstance(node, nodes.Tuple) and node.ctx != "load":
        return node
    if isinstance(node, (nodes.List, nodes.Tuple)) and not all(
            isinstance(n, nodes.Const) for n in node.items):
        return wrapped(node, "weighed")
    if isinstance(node, nodes.Dict) and not all(
            isinstance(p.key, nodes.Const) and isinstance(p.value, nodes.Const)
            for p in node.items):
        return wrapped(node, "weighed")
    return node


# -- the environment -------------------------------------------------------------------------
class SafeUndefined(ChainableUndefined):
    """A missing value: renders as nothing and survives attribute access and arithmetic."""

    __slots__ = ()

    def _absorb(self, *args: Any, **kwargs: Any) -> SafeUndefined:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _absorb
    __div__ = __rdiv__ = __truediv__ = __rtruediv__ = _absorb
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = _absorb
    __pos__ = __neg__ = __call__ = __getitem__ = _absorb

    def _false(self, other: Any) -> bool:
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _false

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0


def _finalize(value: Any) -> Any:
    """Each `{{ value }}`: a container is weighed before it becomes text."""
    if isinstance(value, CONTAINERS):
        weigh(value)
    return value


class CampaignEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox campaign templates run in: no internals, no mutation, a budget."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])
    template_class = BudgetTemplate
    # Read-only views made for templates: attribute checks reduce to "no underscore names".
    trusted_types: set[type] = set()

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: guard("filter", name, f) for name, f in self.filters.items()}
        self.tests = {name: guard("test", name, f) for name, f in self.tests.items()}
        self.globals = {"range": _bounded_range, "dict": dict}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if type(obj) in self.trusted_types:
            return not attr.startswith("_")
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Fail loudly (not an empty string): the save-time check must see every attempt.
        raise SecurityError(f"access to attribute {attribute!r} of a "
                            f"{type(obj).__name__} object is not allowed")

    # Captured blocks (set blocks, macros, call and filter blocks) are joined here.
    def concat(self, parts: Iterable[str]) -> str:  # type: ignore[override]
        text = _collect(parts, _state.cap)
        spend(len(text))
        return text

    @staticmethod
    def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
        return bounded_iter(iterable)

    @staticmethod
    def weighed(value: Any) -> Any:
        weigh(value)
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        result = super().getitem(obj, argument)
        if isinstance(argument, slice) and isinstance(result, (str, list, tuple)):
            spend(len(result))
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and \
                    left.bit_length() * right > MAX_INT_BITS:
                raise BudgetExceeded("the result of ** would be too large")
            if isinstance(right, (int, float)) and abs(right) > MAX_INT_BITS:
                raise BudgetExceeded("exponent too large")
            return left ** right
        if operator == "%":
            if isinstance(left, str):
                spend(printf_size(left, right))
            return left % right
        if operator == "+":
            if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
                spend(len(left) + len(right))
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                weigh((left, right))
            elif isinstance(left, int) and isinstance(right, int) and \
                    max(left.bit_length(), right.bit_length()) >= MAX_INT_BITS:
                raise BudgetExceeded("the result of + would be too large")
            return left + right
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, bytearray, list, tuple)) and isinstance(times, int):
                unit = len(seq) if isinstance(seq, (str, bytes, bytearray)) else weigh(seq)
                spend(unit * max(0, times))
                return left * right
        if isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise BudgetExceeded("the result of * would be too large")
        return left * right

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__
        mapping = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            tick()
            spend(format_size(fmt, args if not mapping else (), kwargs if not mapping else args))
            return wrapper(*args, **kwargs)

        return bounded

    def call(__self, __context: Any, __obj: Any, *args: Any,  # noqa: N805
             **kwargs: Any) -> Any:
        tick()
        if type(__obj) in _METHOD_TYPES:
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, (str, bytes, bytearray)):
                check = METHOD_CHECKS.get(__obj.__name__)
                if check is not None:
                    args = check(owner, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str):
            spend(len(result))
        elif isinstance(result, CONTAINERS):
            weigh(result)
        return result


@lru_cache(maxsize=2)
def environment(html: bool) -> CampaignEnvironment:
    """The sandboxed environment for HTML (autoescaped) or text parts."""
    return CampaignEnvironment(autoescape=html, undefined=SafeUndefined,
                               keep_trailing_newline=True)


def compile_template(source: str, part: str, *, html: bool) -> Template:
    """A compiled, instrumented template whose error frames name the part (for line numbers)."""
    env = environment(html)
    tree = instrument(env.parse(source, name=part, filename=f"<{part}>"))
    code = env.compile(tree, name=part, filename=f"<{part}>")
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    # The compiled code looks its helpers up in its module namespace: `~` joins sized first.
    namespace = template.root_render_func.__globals__
    namespace["markup_join"], namespace["str_join"] = _markup_join, _str_join
    return template
