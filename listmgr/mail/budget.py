"""The template budget: each render has a deadline and an allowance of characters it may
create. Pure; no I/O.

Jinja's sandbox keeps a template away from Python's internals, not from the machine: one
`{{ 'a'|center(10**9) }}` allocates gigabytes and three nested loops never end. The sandbox
(listmgr.mail.sandbox) calls `tick()` wherever a template can repeat work (each loop iteration,
call, intercepted operator and filter), so a render that overruns stops within a hair of its
budget, and `spend()` / `weigh()` *before* anything big is built (a width, a repeat count, a
join), because a single C-level operation cannot be stopped once it runs. The budget lives in a
thread-local: web and worker threads render at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jinja2.environment import Template
from jinja2.exceptions import SecurityError

WORK_FACTOR = 8  # a render may create this many times its output cap in text
CONTAINERS = (list, tuple, dict, set, frozenset)


class BudgetExceeded(SecurityError):
    """A render used up its time or its allowance of text."""


@dataclass(frozen=True)
class Limits:
    """The budget of one message (or of one save check)."""

    seconds: float = 0.5  # wall-clock time its renders may take together
    output: int = 2_000_000  # characters one rendered part (or any text built) may have


class Budget:
    """What is left of one budget over several renders (the save check renders every part)."""

    __slots__ = ("chars", "limits", "seconds")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.seconds = limits.seconds
        self.chars = limits.output * WORK_FACTOR


class RenderState(threading.local):
    """The render running on this thread (the class values: none)."""

    active = False
    deadline = math.inf
    seconds = Limits.seconds
    cap = Limits.output
    left = Limits.output * WORK_FACTOR
    total = Limits.output


render_state = RenderState()  # the render running on this thread


def tick() -> None:
    """Stop the render when its time is up."""
    if time.monotonic() > render_state.deadline:
        raise BudgetExceeded(
            f"the template took longer than {render_state.seconds:g} s to render "
            "(a loop that runs too long?)"
        )


def spend(chars: int) -> None:
    """Account for a text of `chars` characters about to be built; refuse it when too big."""
    st = render_state
    if chars > st.cap:
        raise BudgetExceeded(
            f"the template would build a text of {chars:,} characters (at most {st.cap:,})"
        )
    st.left -= chars
    if st.left < 0:
        raise BudgetExceeded(
            f"the template builds more than {st.cap * WORK_FACTOR:,} characters of text in all"
        )


def weigh(value: Any, limit: int | None = None) -> int:
    """About how many characters `value` has as text; refused beyond the cap. Containers are
    walked (shared references count each time: that is what str() and == would do)."""
    cap = render_state.cap if limit is None else limit
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


def collect(parts: Iterable[str], limit: int) -> str:
    """The parts joined, refused before joining when they exceed `limit` characters (every
    new string a template makes was paid for by `spend`: the parts are mostly references)."""
    out = list(parts)
    size = sum(map(len, out))
    if size > limit:
        raise BudgetExceeded(f"the rendered text is larger than {limit:,} characters")
    return "".join(out)


class BudgetTemplate(Template):
    """A template whose every render runs under a budget (the defaults unless given one)."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        if not render_state.active:
            return render(self, dict(*args, **kwargs), Limits())
        ctx = self.new_context(dict(*args, **kwargs))
        try:
            return collect(self.root_render_func(ctx), render_state.total)
        except Exception:
            self.environment.handle_exception()
        raise AssertionError("unreachable")  # handle_exception always raises


def render(
    template: Template,
    context: dict[str, Any],
    budget: Budget | Limits,
    *,
    output: int | None = None,
) -> str:
    """Render within `budget` (a whole Limits, or what is left of a Budget shared by several
    renders); `output` caps the whole text (default: the cap of one part). Raises
    BudgetExceeded (a SecurityError) when the budget runs out."""
    st = render_state
    if st.active:  # inside another budgeted render: that one governs
        return template.render(context)
    shared: Budget | None
    if isinstance(budget, Budget):
        shared, limits = budget, budget.limits
    else:
        shared, limits = None, budget
    started = time.monotonic()
    st.active, st.seconds, st.cap = True, limits.seconds, limits.output
    if shared is not None:
        st.deadline, st.left = started + shared.seconds, shared.chars
    else:
        st.deadline, st.left = started + limits.seconds, limits.output * WORK_FACTOR
    st.total = output or limits.output
    try:
        return template.render(context)
    finally:
        st.active, st.deadline = False, math.inf
        if shared is not None:
            shared.seconds -= time.monotonic() - started
            shared.chars = st.left
