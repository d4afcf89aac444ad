"""The sandbox campaign templates run in: no Python internals, no mutation, and a budget
(listmgr.mail.budget) that every render, loop, call, operator and filter answers to (the bounded
operations are in listmgr.mail.bounded). Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from types import FunctionType
from typing import Any, ClassVar, cast

from jinja2 import ChainableUndefined
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from listmgr.mail.bounded import (
    MAX_INT_BITS,
    METHOD_CHECKS,
    METHOD_TYPES,
    bounded_iter,
    bounded_range,
    guard,
    instrument,
    printf_size,
    sized_markup_join,
    sized_str_join,
)
from listmgr.mail.budget import (
    CONTAINERS,
    BudgetExceeded,
    BudgetTemplate,
    collect,
    render_state,
    spend,
    tick,
    weigh,
)


class SafeUndefined(ChainableUndefined):
    """A missing value: renders as nothing and survives attribute access and arithmetic."""

    __slots__ = ()

    def _absorb(self, *args: Any, **kwargs: Any) -> SafeUndefined:
        return self

    # Undefined's operators and conversions raise (typed NoReturn); these answer instead,
    # hence the ignores (assignment, override) below.

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _absorb  # type: ignore[assignment]
    __div__ = __rdiv__ = __truediv__ = __rtruediv__ = _absorb  # type: ignore[assignment]
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = _absorb  # type: ignore[assignment]
    __pos__ = __neg__ = __call__ = __getitem__ = _absorb  # type: ignore[assignment]

    def _false(self, other: Any) -> bool:
        return False

    __lt__ = __le__ = __gt__ = __ge__ = _false  # type: ignore[assignment]

    def __int__(self) -> int:  # type: ignore[override]
        return 0

    def __float__(self) -> float:  # type: ignore[override]
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
    trusted_types: ClassVar[set[type]] = set()

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: guard("filter", name, f) for name, f in self.filters.items()}
        self.tests = {
            name: guard("test", name, cast(Callable[..., Any], f))  # typed `function`
            for name, f in self.tests.items()
        }
        self.globals = {"range": bounded_range, "dict": dict}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if type(obj) in self.trusted_types:
            return not attr.startswith("_")
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Fail loudly (not an empty string): the save-time check must see every attempt.
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__} object is not allowed"
        )

    # Captured blocks (set blocks, macros, call and filter blocks) are joined here.
    def concat(self, parts: Iterable[str]) -> str:
        text = collect(parts, render_state.cap)
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
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_INT_BITS
            ):
                raise BudgetExceeded(f"the result of ** would have more than {MAX_INT_BITS:,} bits")
            if isinstance(right, (int, float)) and abs(right) > MAX_INT_BITS:
                raise BudgetExceeded(f"an exponent may be at most {MAX_INT_BITS:,}")
            return left**right
        if operator == "%":
            if isinstance(left, (str, bytes, bytearray)):
                spend(printf_size(left if isinstance(left, str) else left.decode("latin-1"), right))
            return left % right
        if operator == "+":
            if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
                spend(len(left) + len(right))
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                weigh((left, right))
            elif (
                isinstance(left, int)
                and isinstance(right, int)
                and max(left.bit_length(), right.bit_length()) >= MAX_INT_BITS
            ):
                raise BudgetExceeded(f"the result of + would have more than {MAX_INT_BITS:,} bits")
            return left + right
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, bytearray, list, tuple)) and isinstance(times, int):
                unit = len(seq) if isinstance(seq, (str, bytes, bytearray)) else weigh(seq)
                spend(unit * max(0, times))
                return left * right
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise BudgetExceeded(f"the result of * would have more than {MAX_INT_BITS:,} bits")
        return left * right

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        method = __obj
        if type(method) is FunctionType:  # Jinja's sandboxed str.format (3.1.5 and later)
            method = getattr(method, "__wrapped__", method)
        if type(method) in METHOD_TYPES:
            owner = getattr(method, "__self__", None)
            if isinstance(owner, (str, bytes, bytearray)):
                check = METHOD_CHECKS.get(method.__name__)
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
    return CampaignEnvironment(autoescape=html, undefined=SafeUndefined, keep_trailing_newline=True)


def compile_template(source: str, part: str, *, html: bool) -> Template:
    """A compiled, instrumented template whose error frames name the part (for line numbers)."""
    env = environment(html)
    tree = instrument(env.parse(source, name=part, filename=f"<{part}>"))
    code = env.compile(tree, name=part, filename=f"<{part}>")
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    # The compiled code looks its helpers up in its module namespace: `~` joins sized first.
    namespace = template.root_render_func.__globals__
    namespace["markup_join"], namespace["str_join"] = sized_markup_join, sized_str_join
    return template
