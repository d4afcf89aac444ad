"""Store new privacy notice versions when the change that makes them is made.

A list's notice is computed from the configuration (services/notices). Every service call
that can change its content (lists, field definitions, interests) is wrapped by
`changes_notices`: once the change is committed, each list's notice in force is computed and a
new dated version stored where it differs (notices.follow_change). Saved settings do the same
from settings_store.update, which this module sits above. The worker does the same once per
process start (recovery.sweep) for changes of the configuration file or environment.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from listmgr.runtime import Runtime
from listmgr.services import notices, settings_store

P = ParamSpec("P")
R = TypeVar("R")


def refresh(rt: Runtime) -> int:
    """Compute every list's notice under the settings in force now; the number of new
    versions stored (a failure is logged, not raised)."""
    return notices.follow_change(rt, settings_store.effective(rt))


def changes_notices(
    fn: Callable[Concatenate[Runtime, P], R],
) -> Callable[Concatenate[Runtime, P], R]:
    """Wrap a service call that may change notices: refresh them after it succeeded."""

    @functools.wraps(fn)
    def wrapper(rt: Runtime, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result = fn(rt, *args, **kwargs)
        refresh(rt)
        return result

    return wrapper
