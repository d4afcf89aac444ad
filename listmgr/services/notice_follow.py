"""Store new privacy notice versions when the change that makes them is made.

A list's notice is computed from the configuration (services/notices). Every service call
that can change its content (settings, lists, field definitions, interests) is wrapped by
`changes_notices`: once the change is committed, each list's notice in force is computed and a
new dated version stored where it differs, so two changes make two versions even when nobody
looks at the notice in between. The worker does the same once per process start
(recovery.sweep) for changes of the configuration file or environment.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from listmgr.runtime import Runtime

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def refresh(rt: Runtime) -> int:
    """Compute every list's notice now; the number of new versions stored. A failure is
    logged, not raised: the change it follows is already saved, and a notice still gets its
    new version when next shown or recorded."""
    from listmgr.services import notices

    try:
        return notices.refresh_all(rt)
    except Exception:
        log.exception("storing the new privacy notice versions failed")
        return 0


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
