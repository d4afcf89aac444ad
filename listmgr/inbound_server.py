"""An LMTP or SMTP listener (aiosmtpd) that an MTA delivers to: 250 only once stored."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from listmgr.errors import ListmgrError, TooLarge
from listmgr.runtime import Runtime
from listmgr.services import inbound

log = logging.getLogger("listmgr.inbound")


class Handler:
    """Stores each message through the inbound service, off the event loop."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        rcpts = list(envelope.rcpt_tos) or [""]
        try:
            stored = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: inbound.store(
                    self.rt,
                    bytes(data),
                    envelope_from=envelope.mail_from or "",
                    envelope_to=" ".join(envelope.rcpt_tos),
                ),
            )
            reply = f"250 2.0.0 Stored as #{stored.id}"
        except TooLarge:
            reply = "552 5.3.4 Message too big"
        except ListmgrError as exc:
            reply = f"554 5.6.0 {exc.message}"
        except Exception:  # the database is away: let the MTA keep it and retry
            log.exception("could not store an inbound message")
            reply = "451 4.3.0 Temporary failure, please retry"
        # LMTP answers once per recipient; SMTP once.
        return "\r\n".join([reply] * len(rcpts)) if isinstance(server, LMTP) else reply


class _Controller(Controller):
    def __init__(self, handler: Handler, *, lmtp: bool, **kw: Any) -> None:
        self.lmtp = lmtp
        super().__init__(handler, **kw)

    def factory(self) -> SMTP:
        cls = LMTP if self.lmtp else SMTP
        return cls(self.handler, **self.SMTP_kwargs)


def start(rt: Runtime, host: str, port: int, *, lmtp: bool) -> Controller:
    """Start listening in a background thread; the caller stops it."""
    rt.settings.check()  # never listen with production settings that are unsafe
    controller = _Controller(
        Handler(rt),
        lmtp=lmtp,
        hostname=host,
        port=port,
        data_size_limit=rt.settings.max_inbound_bytes,
        decode_data=False,
    )
    controller.start()
    return controller
