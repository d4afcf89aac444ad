"""Campaign templates have a budget: an editor's template cannot take the server's memory or
time, on any render (save check, preview, test send, each message sent). Written as an attacker
would: payloads that build huge text or loop for ever, some hidden behind a condition that the
save check's sample person does not meet.

Safety net for running these against code without a budget: the process gets a memory ceiling
(an allocation of gigabytes fails instead of swapping the machine) and a watchdog alarm (a hang
in a render on this thread fails the test instead of stalling the run).
"""

from __future__ import annotations

import resource
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from listmgr import passwords
from listmgr.models import Campaign, Delivery
from tests.admin_support import accounts_by_role, post_form, session_login  # noqa: F401
from tests.campaign_support import campaign_mail, deliveries, make_list, person, wait_status
from tests.conftest import drain

SAMPLE = "someone@example.org"  # the made-up person the save check renders as
HIDE = "{% if subscriber.email != '" + SAMPLE + "' %}"  # only real recipients trigger it
SLOW = HIDE + (
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}{% endif %}"
)  # 10^8 iterations: seconds unbudgeted
HUGE = HIDE + "{{ 'a'|center(1000000000) }}{% endif %}"  # 1,000,000,000 characters

# Payloads that grow text, numbers or work without limit when nothing is measured.
BOMBS = {
    "center": "{{ 'a'|center(1000000000) }}",
    "center-method": "{{ 'a'.center(900000000) }}",
    "ljust": "{{ 'a'.ljust(900000000) }}",
    "zfill": "{{ '1'.zfill(900000000) }}",
    "printf-width": "{{ '%900000000s' % 'a' }}",
    "printf-bytes": "{{ '%900000000d'.encode() % 1 }}",
    "format-filter": "{{ '%900000000d'|format(1) }}",
    "format-precision": "{{ '%.900000000f'|format(1) }}",
    "str-format": "{{ '{:>900000000}'.format(1) }}",
    "str-format-nested": "{{ '{:>{}}'.format(1, 900000000) }}",
    "format-map": "{{ '{x:^900000000}'.format_map({'x': 1}) }}",
    "repeat": "{{ 'a' * 900000000 }}",
    "repeat-bytes": "{{ ('a' * 90000).encode() * 10000 }}",
    "repeat-list": "{{ ['a' * 90000] * 10000 }}",
    "indent": "{{ 'a'|indent(900000000) }}",
    "indent-string": "{{ ('x\n' * 90000)|indent('y' * 90000) }}",
    "wordwrap": "{{ ('a ' * 45000)|wordwrap(1, wrapstring='x' * 90000) }}",
    "join-range": "{{ range(10000)|join('x' * 90000) }}",
    "join-range-mapped": "{{ range(10000)|map('string')|join('x' * 90000) }}",
    "join-method": "{{ ('x' * 90000).join(range(10000)|map('string')) }}",
    "replace": "{{ ('a' * 90000)|replace('a', 'b' * 10000) }}",
    "replace-method": "{{ ('a' * 90000).replace('', 'b' * 10000) }}",
    "expandtabs": "{{ ('\t' * 90000).expandtabs(10000) }}",
    "concat-doubling": "{% set a = 'x' * 90000 %}{% set b = a ~ a ~ a ~ a ~ a ~ a ~ a ~ a %}"
    "{% set c = b ~ b ~ b ~ b ~ b ~ b ~ b ~ b %}{{ c ~ c ~ c ~ c }}",
    "plus-doubling": "{% set a = 'x' * 90000 %}{% set b = a + a + a + a + a + a + a + a %}"
    "{% set c = b + b + b + b + b + b + b + b %}{{ c + c + c + c }}",
    "capture-doubling": "{% set a = 'x' * 90000 %}{% set b %}{% for i in range(10000) %}"
    "{{ a }}{% endfor %}{% endset %}{{ b|length }}",
    "capture-constant": "{% set b %}{% for i in range(10000) %}"
    + "y" * 5000
    + "{% endfor %}{% endset %}{{ b|length }}",
    "literal-fanout": "{% set a = ['x' * 90000] %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}"
    "{% set c = [b, b, b, b, b, b, b, b, b, b] %}{{ [c, c, c, c, c]|string }}",
    "nested-compare": "{% set a0 = [1] %}{% set b0 = [1] %}"
    + "".join(
        f"{{% set a{i} = [a{i - 1}, a{i - 1}] %}}{{% set b{i} = [b{i - 1}, b{i - 1}] %}}"
        for i in range(1, 30)
    )
    + "{{ a29 == b29 }}",
    "macro-growth": "{% macro m(t, n) %}{% if n %}{{ m(t ~ t, n - 1) }}{% endif %}{% endmacro %}"
    "{{ m('x' * 1000, 40) }}",
    "macro-self": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "macro-fork": "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}"
    "{% endmacro %}{{ m(40) }}",
    "nested-loops": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
    "{% endfor %}",
    "loop-over-text": "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}"
    "{% endfor %}",
    "big-power": "{% set a = 10 ** 60 %}{% set b = a ** 60 %}{% set c = b ** 60 %}{{ c ** 60 }}",
    "big-product": "{% set a = 7 ** 60 %}"
    + "".join("{% set a = a * a %}" for _ in range(24))
    + "{{ a > 1 }}",
    "batch-fill": "{{ [1]|batch(1000000000, 'x')|list|length }}",
    "slice-count": "{{ [1]|slice(1000000000)|list|length }}",
    "sum-lists": "{% set l = [[1] * 10] * 20000 %}{{ l|sum(start=[])|length }}",
    "unique-chars": "{{ (('ab' * 500000)|unique|list|length) }}",
    "title-words": "{{ ('a ' * 900000)|title|length }}",
    "pprint": "{{ (['x' * 50] * 10000)|pprint }}",
}


@pytest.fixture(autouse=True)
def memory_ceiling() -> Iterator[None]:
    """At most 600 MB more address space for this test: a budget-less render fails with a
    MemoryError (which the assertions tell apart from a refusal) instead of exhausting RAM.
    The process's one-time argon2 stand-in hash (64 MiB and four threads, made by the first
    app) is made before the ceiling, whichever test this process happens to run first."""
    passwords.verify_nobody("warm up")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * resource.getpagesize()
    ceiling = used + 600_000_000
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Hung(BaseException):
    """A render on this thread outlived the watchdog (BaseException: no handler swallows it)."""


@pytest.fixture
def watchdog() -> Iterator[None]:
    def bark(signum: int, frame: Any) -> None:
        raise Hung("a render blocked the request for more than 20 s")

    previous = signal.signal(signal.SIGALRM, bark)
    signal.setitimer(signal.ITIMER_REAL, 20)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _campaigns(rt) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Campaign)) or 0)


def _refused(resp: Any, part: str = "body") -> str:
    """A clear 422 naming the part and the limit (not a MemoryError or a crash)."""
    assert resp.status_code == 422, (resp.status_code, resp.text[:300])
    error = resp.json["error"]
    assert error["code"] == "template_error" and error.get("field") == part, error
    message = error["message"]
    assert "MemoryError" not in message and "RecursionError" not in message, message
    assert any(
        word in message
        for word in (
            "characters",
            "longer than",
            "at most",
            "not available",
            "bits",
            "adds numbers",
            "too deeply",
        )
    ), message
    return str(message)


def _setup(rt) -> None:
    make_list(rt, "news")


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_save_refuses_templates_that_blow_the_budget(rt, api, watchdog, name):
    _setup(rt)
    started = time.thread_time()
    resp = api.post(
        "/api/campaigns",
        json={
            "name": "Bomb",
            "subject": "Hi",
            "lists": ["news"],
            "html": f"<p>Hello</p>\n{BOMBS[name]}",
        },
    )
    elapsed = time.thread_time() - started
    _refused(resp)
    # The save check stops at the budget (0.5 s of rendering by default), not when the work
    # is done. The request runs on this thread: its CPU time, unlike wall time, does not grow
    # when other processes load the machine.
    assert elapsed < 5, f"{name}: the save check took {elapsed:.1f} s of CPU"
    assert _campaigns(rt) == 0


def test_every_part_is_budgeted_and_patch_changes_nothing(rt, api, watchdog):
    _setup(rt)
    good = api.post(
        "/api/campaigns",
        json={
            "name": "Fine",
            "subject": "Hi",
            "lists": ["news"],
            "html": "<p>Hello {{ subscriber.name }}</p>",
        },
    )
    assert good.status_code == 201, good.json
    cid = good.json["id"]
    before = api.get(f"/api/campaigns/{cid}").json
    for part, key in (
        ("subject", "subject"),
        ("text", "text"),
        ("preheader", "preheader"),
        ("body", "html"),
        ("layout", "layout"),
    ):
        bomb = BOMBS["nested-loops"] if part != "subject" else BOMBS["center"]
        if part == "layout":
            bomb = "<html><body>{{ content }}" + BOMBS["center"] + "</body></html>"
        started = time.thread_time()
        _refused(api.patch(f"/api/campaigns/{cid}", json={key: bomb}), part)
        assert time.thread_time() - started < 5
    assert api.get(f"/api/campaigns/{cid}").json == before


def test_the_budget_is_a_setting(make_runtime, watchdog):
    """An operator's tighter budget holds: 20,000 characters and 0.2 s."""
    rt = make_runtime(template_max_chars=20_000, template_seconds=0.2)
    from listmgr.app import create_app

    app = create_app(rt=rt, migrate=False)
    app.config["TESTING"] = True
    api = app.test_client()
    from listmgr.services import accounts

    headers = {"Authorization": f"Bearer {accounts.create_token(rt, role='owner', name='t')}"}
    _setup(rt)
    body = {"name": "Tight", "subject": "Hi", "lists": ["news"]}
    message = _refused(
        api.post("/api/campaigns", json={**body, "html": "{{ 'a' * 30000 }}"}, headers=headers)
    )
    assert "20,000" in message
    started = time.thread_time()
    message = _refused(
        api.post("/api/campaigns", json={**body, "html": BOMBS["nested-loops"]}, headers=headers)
    )
    assert "0.2 s" in message and time.thread_time() - started < 3
    fine = api.post("/api/campaigns", json={**body, "html": "{{ 'a' * 10000 }}"}, headers=headers)
    assert fine.status_code == 201, fine.json


def test_ordinary_templates_are_untouched(rt, api):
    """What newsletters really do still works: loops, joins of ranges, padding, formats."""
    _setup(rt)
    person(rt, "ada@example.org", ["news"], name="Ada")
    html = (
        "<p>{{ subscriber.name|default('friend', true)|title }}</p>"
        "{% for n in range(3) %}<i>{{ loop.index }}{{ n }}</i>{% endfor %}"
        "<p>{{ range(5)|join(', ') }}|{{ '%05.1f'|format(3.14159) }}|"
        "{{ '{:>6}'.format('ab') }}|{{ 'ab'|center(6) }}|{{ 'x' * 3 }}|"
        "{{ [1, 2] + [3] }}|{{ 'a' ~ 'b' }}|{{ 2 ** 10 }}|{{ 'a-b'|replace('-', '+') }}|"
        "{{ ('word ' * 30)|wordwrap(20)|length > 0 }}|{{ {'k': subscriber.name}.k }}</p>"
        "{% macro box(t) %}[{{ t }}]{% endmacro %}{{ box(subscriber.name) }}"
    )
    resp = api.post(
        "/api/campaigns",
        json={
            "name": "Normal",
            "subject": "Hi {{ subscriber.name }}",
            "lists": ["news"],
            "html": html,
        },
    )
    assert resp.status_code == 201, resp.json
    view = api.post(
        f"/api/campaigns/{resp.json['id']}/preview", json={"email": "ada@example.org"}
    ).json
    for expected in (
        "<p>Ada</p>",
        "<i>10</i><i>21</i><i>32</i>",
        "0, 1, 2, 3, 4|003.1|",
        "    ab|  ab  |xxx|[1, 2, 3]|ab|1024|a+b|True|Ada</p>",
        "[Ada]",
    ):
        assert expected in view["html"], (expected, view["html"])


@pytest.mark.parametrize("payload", [SLOW, HUGE], ids=["slow", "huge"])
def test_hidden_payload_fails_preview_and_test_send_within_the_budget(
    rt, api, sink, watchdog, payload
):
    """A payload the save check's sample person does not trigger passes the save; previewing
    or test-sending as a real subscriber answers a clear 422 within the budget, sends nothing."""
    _setup(rt)
    person(rt, "mallory@example.org", ["news"], name="Mallory")
    resp = api.post(
        "/api/campaigns",
        json={
            "name": "Sleeper",
            "subject": "Hi",
            "lists": ["news"],
            "html": f"<p>Hello</p>{payload}",
        },
    )
    assert resp.status_code == 201, resp.json
    cid = resp.json["id"]
    for call in (
        lambda: api.post(f"/api/campaigns/{cid}/preview", json={"email": "mallory@example.org"}),
        lambda: api.get(f"/api/campaigns/{cid}/preview?email=mallory@example.org"),
        lambda: api.post(
            f"/api/campaigns/{cid}/test",
            json={"to": ["me@example.org"], "email": "mallory@example.org"},
        ),
    ):
        started = time.thread_time()  # the request runs on this thread
        answer = call()
        elapsed = time.thread_time() - started
        assert answer.status_code == 422, (answer.status_code, answer.text[:300])
        message = answer.json["error"]["message"]
        assert answer.json["error"]["code"] == "template_error"
        assert "MemoryError" not in message
        assert "longer than 0.5 s" in message or "1,000,000,000 characters" in message, message
        assert elapsed < 5, f"blocked for {elapsed:.1f} s of CPU"
    assert sink.messages == []


def test_hidden_payload_fails_its_rows_and_pauses_the_campaign(
    rt, api, sink, client, accounts_by_role
):
    """On send, each message over the budget fails its row with the reason; after a few such
    failures (template_failures_pause, 5) the campaign pauses itself with a reason shown by the
    API and the admin; no worker renders for longer than the budget and nobody gets mail."""
    _setup(rt)
    victims = [f"v{i}@example.org" for i in range(12)]
    for email in victims:
        person(rt, email, ["news"], name="Victim")
    resp = api.post(
        "/api/campaigns",
        json={"name": "Sleeper", "subject": "Hi", "lists": ["news"], "html": f"<p>Hello</p>{SLOW}"},
    )
    assert resp.status_code == 201, resp.json
    cid = resp.json["id"]
    # CPU time of this process (its worker threads render): unlike wall time, it does not grow
    # when other processes load the machine.
    started = time.process_time()
    assert api.post(f"/api/campaigns/{cid}/send").status_code == 202
    wait_status(rt, cid, ("paused", "sent"), timeout=60)
    elapsed = time.process_time() - started
    drain(rt)
    got = api.get(f"/api/campaigns/{cid}").json
    assert got["status"] == "paused", got
    assert "template" in got["status_reason"] and "longer than 0.5 s" in got["status_reason"]
    rows = deliveries(rt, cid)
    failed = [d for d in rows.values() if d.status == "failed"]
    assert len(failed) >= 5 and len(failed) < len(victims), [d.status for d in rows.values()]
    for d in failed:
        assert d.error.startswith("template:") and "longer than 0.5 s" in d.error, d.error
    assert got["stats"]["failed"] == len(failed) and got["stats"]["sent"] == 0
    assert campaign_mail(sink, cid) == []
    # Each failure cost at most the budget; the rest waits, untouched, for a decision.
    assert elapsed < 5 + len(failed) * 1.5, elapsed
    with rt.db.session() as s:
        queued = s.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.campaign_id == cid, Delivery.status == "queued")
        )
    assert queued == len(victims) - len(failed)

    session_login(client, rt, accounts_by_role["editor"])
    page = client.get(f"/admin/campaigns/{cid}/stats")
    assert page.status_code == 200 and 'id="status-reason"' in page.text
    assert "the template failed for 5 or more recipients" in page.text

    # Resumed as it is, the campaign pauses again after a few more failures, not at once.
    assert api.post(f"/api/campaigns/{cid}/resume").status_code in (200, 202)
    assert api.get(f"/api/campaigns/{cid}").json["status_reason"] == ""
    wait_status(rt, cid, ("paused", "sent"), timeout=60)
    drain(rt)
    again = [d for d in deliveries(rt, cid).values() if d.status == "failed"]
    assert len(again) > len(failed) and campaign_mail(sink, cid) == []


def test_send_time_size_bomb_fails_only_its_recipients(rt, api, sink):
    """A payload aimed at one recipient fails that row with the reason; the others get mail."""
    _setup(rt)
    person(rt, "mallory@example.org", ["news"], name="Mallory")
    for i in range(3):
        person(rt, f"p{i}@example.org", ["news"], name="Reader")
    html = (
        "<p>Hello</p>{% if subscriber.name == 'Mallory' %}{{ 'a'|center(1000000000) }}{% endif %}"
    )
    resp = api.post(
        "/api/campaigns", json={"name": "Aimed", "subject": "Hi", "lists": ["news"], "html": html}
    )
    assert resp.status_code == 201, resp.json
    cid = resp.json["id"]
    assert api.post(f"/api/campaigns/{cid}/send").status_code == 202
    wait_status(rt, cid, ("sent", "paused"), timeout=60)
    rows = deliveries(rt, cid)
    assert rows["mallory@example.org"].status == "failed"
    assert "1,000,000,000 characters" in rows["mallory@example.org"].error
    assert "MemoryError" not in rows["mallory@example.org"].error
    assert sorted(r for m in campaign_mail(sink, cid) for r in m.rcpt_tos) == [
        f"p{i}@example.org" for i in range(3)
    ]
    assert api.get(f"/api/campaigns/{cid}").json["status"] == "sent"


def test_admin_composer_refuses_a_bomb_and_saves_nothing(rt, client, accounts_by_role, watchdog):
    _setup(rt)
    session_login(client, rt, accounts_by_role["editor"])
    for bomb in (BOMBS["center"], BOMBS["nested-loops"]):
        started = time.thread_time()
        resp = post_form(
            client,
            "/admin/campaigns/new",
            "/admin/campaigns/new",
            {
                "name": "Bomb",
                "subject": "Hi",
                "lists": ["news"],
                "body": f"<p>x</p>{bomb}",
                "content_format": "html",
            },
        )
        assert resp.status_code == 422, resp.status_code
        assert "characters" in resp.text or "longer than 0.5 s" in resp.text
        assert "MemoryError" not in resp.text
        assert time.thread_time() - started < 5
    assert _campaigns(rt) == 0
