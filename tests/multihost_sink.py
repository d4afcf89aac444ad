"""The SMTP sink host of the multi-host tests: an aiosmtpd server that appends one JSON line
per accepted recipient (the sending host's address, the recipient, the Message-ID) to a file.

    python tests/multihost_sink.py HOST PORT FILE
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, path: str) -> None:
        self.out = open(path, "a", encoding="utf-8")  # noqa: SIM115  (open for the process's life)
        self.lock = threading.Lock()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.content)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                line = {"peer": session.peer[0], "rcpt": rcpt, "message_id": headers["Message-ID"]}
                self.out.write(json.dumps(line) + "\n")
            self.out.flush()
        return "250 OK"


def main() -> None:
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(Recorder(path), hostname=host, port=port)
    controller.start()
    print("sink running", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
