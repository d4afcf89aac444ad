"""listmgr: a self-hosted email marketing list manager with honest consent at its core."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def resource_dir(name: str) -> Path:
    """Folder of a shipped resource: inside the package when installed, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    inside = here / name
    return inside if inside.is_dir() else here.parent / name
