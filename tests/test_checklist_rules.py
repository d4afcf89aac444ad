"""The campaign checklist's rules, from plain facts: real MIME messages built here, no database."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from listmgr.mail import checklist as cl
from listmgr.mail import message_scan
from listmgr.mail.campaign import subject_header
from listmgr.services import reputation

LIMITS = cl.RateLimits(
    complaint_good=reputation.COMPLAINT_GOOD,
    complaint_limit=reputation.COMPLAINT_LIMIT,
    bounce_limit=reputation.BOUNCE_LIMIT,
)
PAGE = (
    "<html><head><style>p {{ color: red }}</style><title>Hidden title</title></head><body>"
    '<div class="lm-preheader">{pre}</div>{body}</body></html>'
)


def message(
    html: str | None = "<p>Hello</p>",
    text: str | None = "Hello",
    *,
    subject: str = "Spring news",
    sender: str = "News <news@example.org>",
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = "someone@example.org"
    msg["Subject"] = subject
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def facts(**kw: object) -> cl.Facts:
    values: dict[str, object] = {
        "message": message(PAGE.format(pre="The preheader", body="<p>Hello</p>")),
        "subject": "Spring news",
        "preheader": "The preheader",
        "dkim_domain": "example.org",
        "production": True,
        "audience": 10,
        "tracked": 0,
        "never_engaged": 0,
        "rate_limits": LIMITS,
    }
    values.update(kw)
    return cl.Facts(**values)  # type: ignore[arg-type]


def by_code(found: cl.Checklist, code: str) -> list[cl.Check]:
    return [c for c in found.checks if c.code == code]


def level(found: cl.Checklist, code: str) -> str:
    (check,) = by_code(found, code)
    return check.level


def test_a_good_message_has_only_ok_checks():
    found = cl.evaluate(facts())
    assert found.blockers == () and found.warnings == (), found.checks
    assert {c.code for c in found.checks} >= {
        "subject",
        "preheader",
        "dkim",
        "size",
        "text_part",
        "image_alt",
        "links",
        "audience",
        "engagement",
    }
    data = found.as_json()
    assert data["blockers"] == 0 and data["warnings"] == 0
    assert all(set(c) == {"code", "level", "message"} for c in data["checks"])


@pytest.mark.parametrize(
    ("dkim", "sender", "expected"),
    [
        ("example.org", "news@example.org", cl.OK),
        ("example.org", "news@mail.example.org", cl.OK),  # relaxed: a subdomain
        ("mail.example.org", "news@example.org", cl.OK),
        ("EXAMPLE.ORG.", "news@example.org", cl.OK),
        ("example.org", "news@example.com", cl.WARNING),
        ("example.org", "news@badexample.org", cl.WARNING),  # a suffix, not a subdomain
        ("", "news@example.org", cl.WARNING),  # not signed
        ("xn--bcher-kva.example", "news@bücher.example", cl.OK),  # IDN either way
    ],
)
def test_from_domain_aligned_with_the_dkim_domain(dkim, sender, expected):
    found = cl.evaluate(facts(dkim_domain=dkim, message=message(sender=sender)))
    assert level(found, "dkim") == expected


def test_a_large_html_part_is_clipped_by_gmail_and_a_huge_message_is_refused():
    body = "<p>" + "x" * (cl.GMAIL_CLIP_BYTES - 100) + "</p>"
    assert level(cl.evaluate(facts(message=message(body))), "size") == cl.OK
    over = "<p>" + "x" * (cl.GMAIL_CLIP_BYTES + 10) + "</p>"
    found = cl.evaluate(facts(message=message(over)))
    assert level(found, "size") == cl.WARNING and "102 KB" in by_code(found, "size")[0].message
    # multi-byte characters count as the bytes they take, not as characters
    wide = "<p>" + "é" * (cl.GMAIL_CLIP_BYTES // 2 + 100) + "</p>"
    assert level(cl.evaluate(facts(message=message(wide))), "size") == cl.WARNING
    huge = "<p>" + "y" * (cl.SMTP_SIZE_LIMIT + 1) + "</p>"
    found = cl.evaluate(facts(message=message(huge)))
    assert level(found, "size") == cl.BLOCKER and found.blockers


def test_text_part_missing_empty_or_nothing_readable():
    assert level(cl.evaluate(facts(message=message("<p>Hi</p>", None))), "text_part") == (
        cl.WARNING
    )
    assert level(cl.evaluate(facts(message=message("<p>Hi</p>", "  \n"))), "text_part") == (
        cl.WARNING
    )
    nothing = message('<html><body><img src="https://e.org/a.png" alt=""></body></html>', None)
    assert level(cl.evaluate(facts(message=nothing, preheader="")), "text_part") == cl.BLOCKER
    text_only = message(None, "Just text")
    assert level(cl.evaluate(facts(message=text_only, preheader="")), "text_part") == cl.OK


@pytest.mark.parametrize(
    ("body", "missing", "data_uris"),
    [
        ('<img src="https://e.org/a.png" alt="A">', 0, 0),
        ('<img src="https://e.org/a.png" alt="">', 0, 0),  # decorative
        ('<img src="https://e.org/a.png">', 1, 0),
        ('<IMG SRC="https://e.org/a.png"><img src="https://e.org/b.png"/>', 2, 0),
        ('<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">', 0, 1),
        ('<img src="DATA:image/gif;base64,R0lGOD"><img alt=x src="https://e.org/c">', 1, 1),
        ("<p>no images</p><!-- <img src=x> -->", 0, 0),
    ],
)
def test_images_without_alt_and_data_uris(body, missing, data_uris):
    found = cl.evaluate(facts(message=message(PAGE.format(pre="The preheader", body=body))))
    alt = by_code(found, "image_alt")[0]
    if missing:
        assert alt.level == cl.WARNING
        assert alt.message.startswith(f"{missing} image")
    else:
        assert alt.level == cl.OK
    data = by_code(found, "image_data_uri")
    assert len(data) == (1 if data_uris else 0)
    if data_uris:
        assert data[0].level == cl.WARNING and data[0].message.startswith(f"{data_uris} image")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/x",
        "https://localhost:5000/x",
        "https://app.localhost/",
        "http://127.0.0.1:8000/u/abc",
        "https://127.1/",
        "http://2130706433/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "https://10.1.2.3/",
        "https://172.16.0.9/",
        "https://192.168.1.20/offer",
        "https://169.254.169.254/latest",
        "https://0.0.0.0/",
        "https://[fd00::1]/",
        "https://intranet/page",
        "https://printer.local/",
    ],
)
def test_links_to_this_machine_or_a_private_network_block_in_production(url):
    body = f'<p><a href="{url}">go</a></p>'
    found = cl.evaluate(facts(message=message(PAGE.format(pre="The preheader", body=body))))
    (check,) = by_code(found, "local_links")
    assert check.level == cl.BLOCKER and url in check.message
    # outside production the same link is expected (the app itself runs there)
    dev = cl.evaluate(
        facts(message=message(PAGE.format(pre="The preheader", body=body)), production=False)
    )
    assert not dev.blockers and not by_code(dev, "local_links")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/",
        "https://8.8.8.8/",
        "https://172.32.0.1/",  # just outside 172.16.0.0/12
        "https://[2001:4860::1]/",
        "mailto:someone@localhost",
        "tel:+123",
        "#top",
    ],
)
def test_public_links_pass(url):
    body = f'<p><a href="{url}">go</a></p>'
    found = cl.evaluate(facts(message=message(PAGE.format(pre="The preheader", body=body))))
    assert not by_code(found, "local_links") and not by_code(found, "http_links")


def test_plain_http_links_warn_in_production_and_are_named():
    urls = [f"http://example.org/{i}" for i in range(5)]
    body = "".join(f'<a href="{u}">{i}</a>' for i, u in enumerate(urls))
    body += '<img src="http://cdn.example.org/i.png" alt="i">'
    found = cl.evaluate(facts(message=message(PAGE.format(pre="The preheader", body=body))))
    (check,) = by_code(found, "http_links")
    assert check.level == cl.WARNING and check.message.startswith("6 links")
    assert urls[0] in check.message and "3 more" in check.message
    assert not found.blockers
    # links only in the text part count too
    text_only = message(PAGE.format(pre="The preheader", body="<p>x</p>"), "See http://x.org/a")
    assert by_code(cl.evaluate(facts(message=text_only)), "http_links")
    dev = cl.evaluate(
        facts(message=message(PAGE.format(pre="The preheader", body=body)), production=False)
    )
    assert not by_code(dev, "http_links")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("", cl.BLOCKER),
        ("   \t ", cl.BLOCKER),
        ("Short", cl.OK),
        ("x" * 60, cl.OK),  # over what phones show: noted, not warned
        ("x" * 78, cl.OK),
        ("x" * 79, cl.WARNING),
        ("Grüße aus Köln 🌸 " * 3, cl.OK),  # characters, not bytes
        ("日本語の件名" * 14, cl.WARNING),
    ],
)
def test_subject_length(subject, expected):
    assert level(cl.evaluate(facts(subject=subject)), "subject") == expected


def test_an_encoded_subject_is_read_decoded():
    subject = "Grüße aus Köln – Frühling 🌸"
    data = message(subject=subject)
    assert b"=?utf-8?" in data  # really encoded on the wire
    assert message_scan.read_message(data).subject == subject
    # as listmgr writes it: RFC 2047 words of at most 75 characters on folded lines
    long_subject = "Ünïcödé ✉ " * 12 + "end"
    raw = (
        f"From: news@example.org\r\nSubject: {subject_header(long_subject)}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHi\r\n"
    ).encode()
    assert raw.count(b"=?utf-8?b?") > 2
    read = message_scan.read_message(raw)
    assert read.subject == long_subject
    assert cl.subject_check(read.subject).level == cl.WARNING  # 123 characters


def test_phone_note_quotes_the_subject_start():
    check = cl.subject_check("A" * 55)
    assert check.level == cl.OK and "A" * 50 + "…" in check.message


def test_preheader_missing_too_long_or_not_shown():
    found = cl.evaluate(
        facts(preheader="", message=message(PAGE.format(pre="", body="<p>View in browser</p>")))
    )
    (check,) = by_code(found, "preheader")
    assert check.level == cl.WARNING and "View in browser" in check.message
    long = "word " * 40
    found = cl.evaluate(facts(preheader=long, message=message(PAGE.format(pre=long, body="x"))))
    assert level(found, "preheader") == cl.WARNING
    # a layout without {{ preheader }}: the preheader written is never shown
    found = cl.evaluate(facts(preheader="Lost", message=message("<p>Body only</p>")))
    assert level(found, "preheader") == cl.WARNING
    # escaped characters in the HTML still match the preheader written
    pre = "Tom & Jerry <3"
    html = PAGE.format(pre="Tom &amp; Jerry &lt;3", body="<p>x</p>")
    assert level(cl.evaluate(facts(preheader=pre, message=message(html))), "preheader") == cl.OK


@pytest.mark.parametrize(
    ("audience", "tracked", "never", "codes"),
    [
        (0, 0, 0, {"audience": cl.WARNING}),
        (10, 0, 0, {"audience": cl.OK, "engagement": cl.OK}),
        (10, 10, 5, {"audience": cl.OK, "engagement": cl.OK}),  # half: not "mostly"
        (10, 10, 6, {"audience": cl.OK, "engagement": cl.WARNING}),
        (100, 9, 9, {"audience": cl.OK, "engagement": cl.OK}),  # too few to judge
        (100, 12, 12, {"audience": cl.OK, "engagement": cl.WARNING}),
    ],
)
def test_audience_empty_or_mostly_never_engaged(audience, tracked, never, codes):
    found = cl.evaluate(facts(audience=audience, tracked=tracked, never_engaged=never))
    for code, expected in codes.items():
        assert level(found, code) == expected
    if not tracked and audience:
        assert "unknown" in by_code(found, "engagement")[0].message.lower()


def rates(handed: int, bounces: int = 0, complaints: int = 0) -> cl.ListRates:
    r = reputation.Rates(handed, bounces, complaints, 0)
    return cl.ListRates("News", r.handed_over, r.bounce_rate, r.complaint_rate)


@pytest.mark.parametrize(
    ("r", "codes"),
    [
        (rates(0), {"list_rates": cl.OK}),
        (rates(1000), {"list_rates": cl.OK}),
        (rates(1000, complaints=1), {"list_rates": cl.OK}),  # 0.1 %: at the good level
        (rates(1000, complaints=2), {"complaint_rate": cl.WARNING}),
        (rates(1000, complaints=3), {"complaint_rate": cl.WARNING}),  # at the limit
        (rates(1000, complaints=4), {"complaint_rate": cl.BLOCKER}),
        (rates(50, complaints=4), {"complaint_rate": cl.WARNING}),  # too few to refuse
        (rates(1000, bounces=50), {"list_rates": cl.OK}),
        (rates(1000, bounces=51), {"bounce_rate": cl.WARNING}),
        (rates(200, bounces=100, complaints=100), {"complaint_rate": cl.BLOCKER}),
    ],
)
def test_list_rates(r, codes):
    found = cl.evaluate(facts(lists=(r,)))
    for code, expected in codes.items():
        assert level(found, code) == expected, found.checks
        assert "News" in by_code(found, code)[0].message


def test_each_list_is_judged_on_its_own():
    good, bad = rates(1000), rates(1000, complaints=10)
    bad = cl.ListRates("Offers", bad.handed_over, bad.bounce_rate, bad.complaint_rate)
    found = cl.evaluate(facts(lists=(good, bad)))
    (blocker,) = found.blockers
    assert blocker.code == "complaint_rate" and "Offers" in blocker.message


def test_hidden_text_is_not_visible_text():
    found = message_scan.scan(PAGE.format(pre="Pre", body="<script>var a = 1;</script><p>Body</p>"))
    assert found.visible() == "Pre Body"
