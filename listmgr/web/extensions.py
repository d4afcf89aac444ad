"""Flask extensions shared by the blueprints (bound to the app in create_app)."""
from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect


def client_ip() -> str:
    return request.remote_addr or "unknown"


csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip, headers_enabled=True)
