"""Registers the API modules that exist in this installation."""
from __future__ import annotations

import importlib

for _name in ("fields", "events", "privacy", "segments", "campaigns", "imports", "inbound", "admin",
              "openapi"):
    try:
        importlib.import_module(f"listmgr.web.api.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"listmgr.web.api.{_name}":
            raise
