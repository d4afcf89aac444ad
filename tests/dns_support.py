"""A tiny authoritative DNS server for tests: a zone given as a dict, over UDP and TCP on
127.0.0.1 (an ephemeral port), answered by dnspython in a thread."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# {"name": {"TXT": ["value", ...], "A": ["192.0.2.1"], "MX": [(10, "mx.example.test")]}}
Zone = dict[str, dict[str, list[Any]]]


def _text(rtype: str, value: Any) -> str:
    if rtype == "TXT":
        raw = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return " ".join(f'"{raw[i : i + 255]}"' for i in range(0, len(raw), 255)) or '""'
    if rtype == "MX":
        preference, host = value
        return f"{preference} {host.rstrip('.')}." if host else f"{preference} ."
    return str(value)


class DnsServer:
    """Answers from the zone: a name not in it is NXDOMAIN, a name in `servfail` SERVFAIL."""

    def __init__(self, zone: Zone, servfail: frozenset[str] = frozenset()) -> None:
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.servfail = {n.lower().rstrip(".") for n in servfail}
        self.questions: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self.udp, self.tcp = _bound_pair()
        self.port = self.udp.getsockname()[1]
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def address(self) -> str:
        """The dns_resolver setting that points at this server."""
        return f"127.0.0.1:{self.port}"

    def response(self, wire: bytes) -> dns.message.Message:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rtype))
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.zone[name].get(rtype):
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name,
                    300,
                    dns.rdataclass.IN,
                    rtype,
                    [_text(rtype, v) for v in self.zone[name][rtype]],
                )
            )
        return response

    def _serve_udp(self) -> None:
        self.udp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                wire, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(wire)
            response = self.response(wire)
            size = query.payload if query.edns >= 0 else 512
            try:
                out = response.to_wire(max_size=size)
            except dns.exception.TooBig:  # the client asks again over TCP
                short = dns.message.make_response(query)
                short.flags |= dns.flags.TC
                out = short.to_wire()
            self.udp.sendto(out, peer)

    def _serve_tcp(self) -> None:
        self.tcp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError, struct.error):
                    (length,) = struct.unpack("!H", _read(conn, 2))
                    out = self.response(_read(conn, length)).to_wire()
                    conn.sendall(struct.pack("!H", len(out)) + out)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _bound_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same free port of 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(8)
        return udp, tcp
    raise RuntimeError("no free port for the DNS server")


@contextlib.contextmanager
def dns_server(zone: Zone, servfail: frozenset[str] = frozenset()) -> Iterator[DnsServer]:
    server = DnsServer(zone, servfail)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A UDP port that never answers (a dead resolver): its dns_resolver value."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{udp.getsockname()[1]}"
    finally:
        udp.close()
