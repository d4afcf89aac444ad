"""`listmgr classify FILE…`: one JSON line per file, nothing stored, no database needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from listmgr.tokens import Tokens

SECRET = "classify-cli-secret-0123456789"
DOMAIN = "news.example.org"
DATA = Path(__file__).parent / "data" / "inbound"


def run(
    args: list[str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_MAIL_DOMAIN": DOMAIN,
        # a database nobody can reach: classify must not touch it
        "LISTMGR_DATABASE_URL": "postgresql+psycopg://nobody:x@127.0.0.1:9/none",
    }
    return subprocess.run(
        [sys.executable, "-m", "listmgr", "classify", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_classify_prints_one_json_line_per_file(tmp_path: Path) -> None:
    tokens = Tokens(SECRET)
    mailto = tmp_path / "mailto.eml"
    mailto.write_bytes(
        f"From: Anna <Anna@Example.net>\r\nTo: unsubscribe+{tokens.unsubscribe(5, 2, 9)}@{DOMAIN}"
        "\r\nSubject: unsubscribe\r\n\r\n\r\n".encode()
    )
    bounce = DATA / "bounce--postfix-dsn-confirmation-verp.eml"
    filled = tmp_path / "bounce.eml"
    filled.write_bytes(
        bounce.read_bytes().replace(b"{{BOUNCE_TOKEN_CONFIRM}}", tokens.bounce(5, None, 2).encode())
    )
    reply = DATA / "unsubscribe--fr-apple-mail-body.eml"
    other = DATA / "other--en-gmail-thanks-quoting-footer.eml"

    proc = run([str(mailto), str(filled), str(reply), str(other)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [line["file"] for line in lines] == [str(mailto), str(filled), str(reply), str(other)]
    for line in lines:
        assert set(line) == {
            "file",
            "kind",
            "permanent",
            "recipients",
            "subscriber",
            "list",
            "campaign",
            "proof",
        }
        assert isinstance(line["recipients"], list)
    assert lines[0] | {"file": None} == {
        "file": None,
        "kind": "unsubscribe",
        "permanent": None,
        "recipients": ["anna@example.net"],
        "subscriber": 5,
        "list": 2,
        "campaign": 9,
        "proof": ["token"],
    }
    assert lines[1]["proof"][0] == "token"  # the VERP address
    # a reply in words: at most a Message-ID that the outbox may or may not hold
    assert set(lines[2]["proof"]) <= {"outbox-message-id"}
    assert lines[1]["kind"] == "bounce" and lines[1]["permanent"] is True
    assert (lines[1]["subscriber"], lines[1]["list"], lines[1]["campaign"]) == (5, 2, None)
    assert lines[1]["recipients"] == ["nosuchuser@example.net"]
    assert lines[2]["kind"] == "unsubscribe" and lines[2]["recipients"] == [
        "marie.dubois@example.fr"
    ]
    assert lines[3]["kind"] == "other" and lines[3]["subscriber"] is None
    assert not (tmp_path / "var").exists()  # nothing stored


def test_classify_reads_stdin_and_shows_evidence_on_request(tmp_path: Path) -> None:
    raw = (DATA / "autoreply--es-precedence-auto-reply.eml").read_bytes()
    proc = run(["--evidence", "-"], tmp_path, stdin=raw)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout)
    assert line["kind"] == "autoreply" and line["evidence"]["rule"] == "autoreply"
    assert 0 <= line["confidence"] <= 1


def test_unreadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    good = DATA / "other--question-to-support.eml"
    missing = tmp_path / "missing.eml"
    proc = run([str(missing), str(good)], tmp_path)
    assert proc.returncode != 0
    err = proc.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "missing.eml" in err
    # the readable file is still classified
    assert json.loads(proc.stdout)["kind"] == "other"


def test_a_directory_is_unreadable_too(tmp_path: Path) -> None:
    proc = run([str(tmp_path)], tmp_path)
    assert proc.returncode != 0 and proc.stdout == b""
    assert len(proc.stderr.decode().strip().splitlines()) == 1
