"""The delivery guard per receiving domain, with real parts: aiosmtpd servers that throttle one
domain or hold messages, real workers (two runtimes stand for two worker processes), the real
database (SQLite, or PostgreSQL + Redis when their URLs are set). Only the clock is patched."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr import runtime
from listmgr.errors import ConfigError
from listmgr.mail.domains import DomainPolicy, Warmup, is_throttling
from listmgr.models import DomainBackoff, DomainSlot, SendVolume, utcnow
from listmgr.services import accounts, campaigns, delivery, domain_guard
from listmgr.settings import load_settings
from tests.admin_support import Account, session_login
from tests.campaign_support import campaign, deliveries, make_list, person, wait_status
from tests.conftest import Sink, drain, settings_for, start_sink, wait_until


# -- the rules (pure) -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "text", "slow"),
    [
        (421, "4.7.0 Try again later, closing connection", True),
        (421, "service not available", True),
        (450, "4.7.28 Our system has detected an unusual rate of unsolicited mail", True),
        (451, "4.7.650 The mail server has been temporarily rate limited", True),
        (451, "Too many messages from your IP, try again later", True),
        (451, "4.7.1 Greylisted, please try again later", False),  # of one sender, not volume
        (450, "4.2.2 mailbox full", False),
        (452, "4.3.1 insufficient system storage", False),
        (550, "5.7.1 rate limited", False),  # permanent: the bounce policy's
        (None, "connection: ConnectionRefusedError", False),
    ],
)
def test_which_replies_mean_slow_down(code: int | None, text: str, slow: bool) -> None:
    assert is_throttling(code, text) is slow


def test_a_provider_shares_one_limit_over_its_domains() -> None:
    policy = DomainPolicy(
        {
            "Microsoft": {"rate": 5, "domains": ["outlook.com", "Hotmail.com", "live.com"]},
            "gmail.com": {"concurrency": 2},
        }
    )
    assert policy.key_of("hotmail.com") == policy.key_of("live.com") == "microsoft"
    assert policy.limit_of("outlook.com").rate == 5  # type: ignore[union-attr]
    assert policy.limit_of("gmail.com").concurrency == 2  # type: ignore[union-attr]
    assert policy.limit_of("example.org") is None and policy.key_of("example.org") == "example.org"
    assert not DomainPolicy({}) and not DomainPolicy({"a.org": {}})


def test_warm_up_grows_each_day_and_ends_unlimited() -> None:
    plan = Warmup(date(2026, 3, 1), 4, 1000, 2.0)
    caps = [plan.cap(date(2026, 3, 1) + timedelta(days=d)) for d in range(-1, 6)]
    assert caps == [1000, 1000, 2000, 4000, 8000, None, None]


# -- settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('[domain_limits."gmail.com"]\nrate = -1\n', "domain_limits.gmail.com.rate"),
        ('[domain_limits."gmail.com"]\nrate = "fast"\n', "must be a number"),
        ('[domain_limits."gmail.com"]\nconcurrency = 1.5\n', "must be an integer"),
        (
            '[domain_limits."gmail.com"]\nspeed = 3\n',
            "unknown setting domain_limits.gmail.com.speed",
        ),
        ('[domain_limits.ms]\ndomains = "outlook.com"\n', "must be a list"),
        (
            '[domain_limits.ms]\ndomains = ["outlook.com"]\n[domain_limits."outlook.com"]\nrate = 1\n',
            "outlook.com is in both",
        ),
        ('[domain_limits."not a domain"]\nrate = 1\n', "is not a domain name"),
        ('warmup_start = "next monday"\nwarmup_days = 5\nwarmup_first_day = 50\n', "warmup_start"),
        ('warmup_start = "2026-01-05"\n', "warmup_days and warmup_first_day"),
        ("warmup_growth = 0.5\n", "warmup_growth"),
        ("domain_backoff_seconds = -5\n", "domain_backoff_seconds"),
    ],
)
def test_bad_settings_stop_the_start_with_a_clear_line(
    tmp_path: Path, database_url: str, toml: str, words: str
) -> None:
    (tmp_path / "development.toml").write_text(toml)
    environ = {"LISTMGR_CONFIG_DIR": str(tmp_path), "LISTMGR_ENV": "development"}
    with pytest.raises(ConfigError) as caught:
        settings = load_settings(settings_for(database_url, None), environ=environ)
        runtime.build(settings.model_dump())  # what every process does on start
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_table_in_the_environment_is_json(database_url: str) -> None:
    environ = {
        "LISTMGR_DOMAIN_LIMITS": '{"ms": {"rate": 20, "concurrency": 4, '
        '"domains": ["outlook.com", "hotmail.com"]}}'
    }
    settings = load_settings(settings_for(database_url, None), environ=environ)
    assert settings.domain_limits["ms"].domains == ["outlook.com", "hotmail.com"]
    with pytest.raises(ConfigError, match="must be JSON such as"):
        load_settings(environ={"LISTMGR_DOMAIN_LIMITS": "gmail.com=20"})


# -- a throttled domain backs off alone -----------------------------------------------------------
@dataclass
class TimedSink(Sink):
    """A Sink that notes when each message arrived, and how many of each domain were in DATA
    at once (each DATA takes `linger` seconds)."""

    linger: float = 0.0
    arrived: list[tuple[float, str]] = field(default_factory=list)
    inflight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)

    async def handle_DATA(self, server, session, envelope):
        domain = envelope.rcpt_tos[0].rpartition("@")[2]
        with self.lock:
            self.inflight[domain] += 1
            self.peak[domain] = max(self.peak[domain], self.inflight[domain])
        await asyncio.sleep(self.linger)
        with self.lock:
            self.inflight[domain] -= 1
            self.arrived.append((time.monotonic(), envelope.rcpt_tos[0]))
        return await super().handle_DATA(server, session, envelope)

    def times(self, domain: str) -> list[float]:
        with self.lock:
            return sorted(t for t, rcpt in self.arrived if rcpt.endswith("@" + domain))


@pytest.fixture
def timed_sink() -> Iterator[TimedSink]:
    handler = TimedSink()
    controller = start_sink(handler)
    yield handler
    controller.stop()


def test_a_throttling_domain_backs_off_alone(make_runtime, timed_sink: TimedSink) -> None:
    sink = timed_sink
    # A normal 4xx retry would come after a minute: the domain's own back-off (1 s) rules.
    rt = make_runtime(smtp_url=sink.url, domain_backoff_seconds=1.0, retry_base_seconds=60)
    make_list(rt, "news")
    for i in range(30):
        person(rt, f"slow{i}@slow.example", ["news"])
        person(rt, f"fast{i}@fast.example", ["news"])
    refusals: list[float] = []
    lock = threading.Lock()

    def on_rcpt(address: str) -> str | None:
        if not address.endswith("@slow.example"):
            return None
        with lock:  # the receiving side throttles for half a second after its first refusal
            if not refusals or time.monotonic() - refusals[0] < 0.5:
                refusals.append(time.monotonic())
                return "421 4.7.0 Try again later, closing connection"
        return None

    sink.rcpt_hook = on_rcpt
    cid = campaign(rt)
    campaigns.start(rt, cid)
    # The other domain goes on at full speed meanwhile.
    wait_until(lambda: len(sink.times("fast.example")) == 30, what="fast.example sent")
    assert len(sink.times("slow.example")) < 30
    drain(rt, timeout_ms=60000)
    assert wait_status(rt, cid, timeout=60) == "sent"

    assert len(sink.times("slow.example")) == 30  # all sent later, each once
    assert Counter(r for _, r in sink.arrived).most_common(1)[0][1] == 1
    # Not hammered: only messages already on their way met the refusal (a round at most).
    assert 1 <= len(refusals) <= 2 * 4
    first_refusal = refusals[0]
    assert min(sink.times("slow.example")) - first_refusal > 0.9  # waited the back-off out
    rows = deliveries(rt, cid)
    assert all(d.status == "sent" for d in rows.values())
    assert sum(d.attempts for e, d in rows.items() if e.startswith("fast")) == 30
    with rt.db.session() as s:
        backoff = s.get(DomainBackoff, "slow.example")
        assert backoff is not None and backoff.level >= 1
        assert s.get(DomainBackoff, "fast.example") is None


def test_a_domain_that_throttles_again_soon_waits_longer(rt) -> None:
    settings = rt.settings.with_values({"domain_backoff_seconds": 10.0})
    guard = domain_guard.process_guard(rt, settings, None)
    start = utcnow()
    first = guard.throttled(rt, "slow.example", start)
    assert first == start + timedelta(seconds=10)
    # Replies of messages that were in flight change nothing.
    assert guard.throttled(rt, "slow.example", start + timedelta(seconds=3)) == first
    again = first + timedelta(seconds=5)
    assert guard.throttled(rt, "slow.example", again) == again + timedelta(seconds=20)
    much_later = again + timedelta(hours=2)
    assert guard.throttled(rt, "slow.example", much_later) == much_later + timedelta(seconds=10)
    # What each process reads into memory once a second.
    other = domain_guard.Guard(settings, lambda _n, r: None)
    other.refresh(rt, much_later)
    assert other.backoffs == {"slow.example": much_later + timedelta(seconds=10)}


def test_a_domain_rate_holds_while_the_others_run(make_runtime, timed_sink: TimedSink) -> None:
    sink = timed_sink
    rt = make_runtime(
        smtp_url=sink.url, domain_limits={"rated.example": {"rate": 4}}, send_connections=4
    )
    make_list(rt, "news")
    for i in range(9):
        person(rt, f"r{i}@rated.example", ["news"])
    for i in range(40):
        person(rt, f"o{i}@other.example", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt, timeout_ms=60000)
    assert wait_status(rt, cid, timeout=60) == "sent"
    rated, other = sink.times("rated.example"), sink.times("other.example")
    assert len(rated) == 9 and len(other) == 40
    # At 4/s the last five take at least a second (generous: 0.75 s). The first four are left
    # out: under load they were seen arriving together now and then (one per connection).
    assert rated[-1] - rated[-5] >= 0.75, [round(t - rated[0], 3) for t in rated]
    # The other domain did not wait for the rated one's turns.
    assert other[-1] < rated[-1] - 0.5


def test_concurrency_per_domain_holds_over_two_workers(make_runtime, timed_sink: TimedSink) -> None:
    sink = timed_sink
    sink.linger = 0.15  # each message stays in DATA a while: in-flight counts are visible
    extra = {
        "smtp_url": sink.url,
        "domain_limits": {"pair": {"concurrency": 2, "domains": ["pair.example", "pair2.example"]}},
        "send_connections": 4,
        "send_batch_size": 10,
    }
    first = make_runtime(**extra)
    second = make_runtime(**extra)  # another worker process on the same database
    make_list(first, "news")
    for i in range(16):
        person(first, f"p{i}@pair.example" if i % 2 else f"p{i}@pair2.example", ["news"])
    for i in range(16):
        person(first, f"o{i}@other.example", ["news"])
    cid = campaign(first)
    campaigns.start(first, cid)
    second.enqueue("send_batch", cid)
    drain(first, timeout_ms=60000)
    drain(second, timeout_ms=60000)
    assert wait_status(first, cid, timeout=60) == "sent"
    assert len(sink.times("pair.example")) + len(sink.times("pair2.example")) == 16
    # Both domains share the entry's two slots; the other domain had more at once.
    assert sink.peak["pair.example"] + sink.peak["pair2.example"] <= 4
    with sink.lock:
        both = max(sink.peak["pair.example"], sink.peak["pair2.example"])
    assert both <= 2
    assert sink.peak["other.example"] > 2
    with first.db.session() as s:  # every slot was given back
        assert s.scalars(select(DomainSlot)).all() == []


def test_a_pair_never_has_more_than_two_in_flight_together(
    make_runtime, timed_sink: TimedSink
) -> None:
    """The same, counted over the entry's domains together at each moment."""
    sink = timed_sink
    sink.linger = 0.15
    together = {"now": 0, "peak": 0}
    lock = threading.Lock()
    original = sink.handle_DATA

    async def counting(server, session, envelope):
        pair = envelope.rcpt_tos[0].endswith(("@pair.example", "@pair2.example"))
        if pair:
            with lock:
                together["now"] += 1
                together["peak"] = max(together["peak"], together["now"])
        try:
            return await original(server, session, envelope)
        finally:
            if pair:
                with lock:
                    together["now"] -= 1

    sink.handle_DATA = counting  # type: ignore[method-assign]
    extra = {
        "smtp_url": sink.url,
        "domain_limits": {"pair": {"concurrency": 2, "domains": ["pair.example", "pair2.example"]}},
        "send_batch_size": 8,
    }
    first = make_runtime(**extra)
    second = make_runtime(**extra)
    make_list(first, "news")
    for i in range(20):
        person(first, f"p{i}@pair.example" if i % 2 else f"p{i}@pair2.example", ["news"])
    cid = campaign(first)
    campaigns.start(first, cid)
    second.enqueue("send_batch", cid)
    drain(first, timeout_ms=60000)
    drain(second, timeout_ms=60000)
    assert wait_status(first, cid, timeout=60) == "sent"
    assert len(sink.times("pair.example")) + len(sink.times("pair2.example")) == 20
    assert together["peak"] == 2  # the limit bound, and held


# -- warm-up ------------------------------------------------------------------------------------
def test_warm_up_volume_holds_over_workers_and_campaigns(
    make_runtime, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = utcnow().date()
    extra = {
        "warmup_start": today.isoformat(),
        "warmup_days": 3,
        "warmup_first_day": 7,
        "warmup_growth": 2.0,
        "send_batch_size": 3,  # several batches: the day's volume is taken piece by piece
    }
    first = make_runtime(**extra)
    second = make_runtime(**extra)
    make_list(first, "news")
    make_list(first, "offers")
    for i in range(6):
        person(first, f"n{i}@example.org", ["news"])
        person(first, f"o{i}@example.net", ["offers"])
    one = campaign(first, lists=["news"])
    two = campaign(first, name="Offers", lists=["offers"])
    campaigns.start(first, one)
    campaigns.start(second, two)
    second.enqueue("send_batch", one)
    first.enqueue("send_batch", two)
    # The rest waits for tomorrow: the jobs end with the next one due then (no drain).
    tomorrow = datetime.combine(today + timedelta(days=1), datetime.min.time())

    def settled() -> bool:
        rows = [*deliveries(first, one).values(), *deliveries(first, two).values()]
        waiting = [d for d in rows if d.status == "queued" and d.next_attempt_at == tomorrow]
        return len(waiting) == 5 and all(d.status in ("sent", "queued") for d in rows)

    wait_until(settled, what="the day's volume sent and the rest put off")
    time.sleep(0.3)  # nothing more may come today
    assert len(sink.messages) == 7
    left = {**deliveries(first, one), **deliveries(first, two)}
    waiting = [d for d in left.values() if d.status == "queued"]
    assert len(waiting) == 5
    assert all(d.next_attempt_at == tomorrow and d.attempts == 0 for d in waiting)
    stats = [campaigns.stats(first, c) for c in (one, two)]
    assert sum(s.waiting_warmup for s in stats) == 5 and sum(s.sent for s in stats) == 7
    for c in (one, two):
        if any(d.campaign_id == c for d in waiting):
            assert campaigns.get(first, c).status == "sending"  # it goes on tomorrow
    waits = next(c for c in (one, two) if any(d.campaign_id == c for d in waiting))
    page = _stats_page(first, waits)
    assert "message(s) waiting for tomorrow's warm-up volume" in page
    with first.db.session() as s:
        assert s.get(SendVolume, today.isoformat()).used == 7  # type: ignore[union-attr]

    # The next day (only the clock moves): the rest goes out.
    later = tomorrow + timedelta(hours=1)
    monkeypatch.setattr(delivery, "utcnow", lambda: later)
    campaigns.requeue(first)
    assert wait_status(first, one) == wait_status(first, two) == "sent"
    assert len(sink.messages) == 12
    assert Counter(r for m in sink.messages for r in m.rcpt_tos).most_common(1)[0][1] == 1
    with first.db.session() as s:
        assert s.get(SendVolume, (today + timedelta(days=1)).isoformat()).used == 5  # type: ignore[union-attr]


def _stats_page(rt: runtime.Runtime, campaign_id: int) -> str:
    """The campaign's stats page as an editor sees it."""
    from listmgr.app import create_app

    app = create_app(rt=rt, migrate=False)
    app.config["TESTING"] = True
    client = app.test_client()
    email = "editor@staff.example.org"
    uid = accounts.create_user(
        rt, email=email, password="correct horse battery staple", role="editor", name="Ed"
    )
    session_login(client, rt, Account(uid, email, "editor"))
    response = client.get(f"/admin/campaigns/{campaign_id}/stats")
    assert response.status_code == 200
    return response.get_data(as_text=True)
