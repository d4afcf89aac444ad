"""The campaign checklist: from plain facts about a campaign's built message, its audience and
its lists' recent rates, the checks a sender should see before sending, each a blocker (the mail
would be broken or harm the sender: sending is refused), a warning or ok. Pure; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from listmgr.mail.dkim import aligned
from listmgr.mail.message_scan import URL_IN_TEXT, Scan, local_host, read_message, scan

BLOCKER, WARNING, OK = "blocker", "warning", "ok"
LEVELS = (BLOCKER, WARNING, OK)

# Gmail shows "[Message clipped]" and hides the rest (the footer with the unsubscribe link
# too) when a message's HTML is larger than 102 KB.
GMAIL_CLIP_BYTES = 102 * 1024
# The smallest message size limit common among receiving servers (Exchange's and many hosted
# servers' default is 10 MB): a larger message is refused outright by them.
SMTP_SIZE_LIMIT = 10 * 1024 * 1024
# RFC 5322 advises lines under 78 characters; desktop inboxes cut subjects about there.
SUBJECT_LONG = 78
# Phones show about the first 40 to 60 characters of a subject.
SUBJECT_PHONE = 50
# Inboxes show up to about 100-140 characters of the preview line; beyond that it is never seen.
PREHEADER_LONG = 140
SNIPPET = 90  # characters of the first visible text quoted when there is no preheader
# Someone sent this many campaigns who never opened or clicked one is unlikely to read the next;
# when they are over half of an audience, mailbox providers read the campaign as unwanted.
NEVER_ENGAGED_SENT = 3
NEVER_ENGAGED_SHARE = 0.5
# Under this many recipients who allow tracking a share says little, and would tell about a
# handful of people (the figures pages withhold counts this small too).
ENGAGEMENT_MIN_TRACKED = 10
# Rates over fewer messages than this say too little to refuse a campaign (they still warn).
RATE_MIN_MESSAGES = 100
LINKS_NAMED = 3  # links quoted in a message; the rest are counted


@dataclass(frozen=True)
class Check:
    code: str  # stable, for programs
    level: str  # one of LEVELS
    message: str  # for people

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "level": self.level, "message": self.message}


@dataclass(frozen=True)
class Checklist:
    checks: tuple[Check, ...]

    @property
    def blockers(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.level == BLOCKER)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.level == WARNING)

    def as_json(self) -> dict[str, object]:
        return {
            "blockers": len(self.blockers),
            "warnings": len(self.warnings),
            "checks": [c.as_json() for c in self.checks],
        }


@dataclass(frozen=True)
class RateLimits:
    """The thresholds the rates are judged by (listmgr.services.reputation owns them)."""

    complaint_good: float
    complaint_limit: float
    bounce_limit: float


@dataclass(frozen=True)
class ListRates:
    """One list's campaign mail handed over in the period and what came of it."""

    name: str
    handed_over: int
    bounce_rate: float | None
    complaint_rate: float | None


@dataclass(frozen=True)
class Facts:
    message: bytes  # the message as it would be sent (its From, HTML and text parts are read)
    subject: str  # as rendered ("" when none is written)
    preheader: str  # as rendered ("" when none is written)
    dkim_domain: str  # the signing domain; "" when messages are not signed
    production: bool
    audience: int | None  # None: not counted (only the blockers were asked for)
    tracked: int  # of the audience: people who allow tracking
    never_engaged: int  # of those: sent NEVER_ENGAGED_SENT+ campaigns, never opened nor clicked
    rate_limits: RateLimits
    lists: tuple[ListRates, ...] = ()
    rate_days: int = 30


def _ascii_domain(domain: str) -> str:
    try:
        return domain.strip().rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain.strip().lower()


def _named(urls: list[str]) -> str:
    shown = ", ".join(urls[:LINKS_NAMED])
    more = len(urls) - LINKS_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _percent(rate: float) -> str:
    return f"{100 * rate:.2f} %"


def _kb(size: int) -> str:
    return f"{size / 1024:,.0f} KB"


# -- the rules -------------------------------------------------------------------------------
def dkim_check(dkim_domain: str, from_domain: str) -> Check:
    """The From domain aligned (relaxed) with the DKIM signing domain."""
    if not dkim_domain:
        return Check(
            "dkim",
            WARNING,
            "Messages are not DKIM-signed: Gmail and Yahoo require a signature aligned with "
            "the From domain for bulk mail. Configure a DKIM key.",
        )
    if not aligned(_ascii_domain(dkim_domain), _ascii_domain(from_domain)):
        return Check(
            "dkim",
            WARNING,
            f"The From domain {from_domain or '(none)'} does not match the DKIM signing domain "
            f"{dkim_domain}: DMARC fails and receivers may reject or file the mail as spam.",
        )
    return Check("dkim", OK, f"The From domain is aligned with the DKIM domain {dkim_domain}.")


def size_check(html: str, size: int) -> Check:
    """The whole message under receivers' size limits and its HTML under Gmail's clipping."""
    html_size = len(html.encode("utf-8"))
    if size > SMTP_SIZE_LIMIT:
        return Check(
            "size",
            BLOCKER,
            f"The message is {_kb(size)}: many receiving servers refuse mail over "
            f"{_kb(SMTP_SIZE_LIMIT)}. Link large files instead of embedding them.",
        )
    if html_size > GMAIL_CLIP_BYTES:
        return Check(
            "size",
            WARNING,
            f"The HTML is {_kb(html_size)}: Gmail clips messages over 102 KB and hides the "
            "rest, the unsubscribe link included.",
        )
    return Check("size", OK, f"The HTML is {_kb(html_size)} (Gmail clips over 102 KB).")


def text_check(html_text: str, text: str | None) -> Check:
    """A plain-text part, and something readable at all."""
    if not (text or "").strip() and not html_text.strip():
        return Check("text_part", BLOCKER, "The message has no readable text at all.")
    if text is None or not text.strip():
        return Check(
            "text_part",
            WARNING,
            "The message has no plain-text part: some clients and spam filters expect one.",
        )
    return Check("text_part", OK, "The message has a plain-text part.")


def image_checks(found: Scan) -> list[Check]:
    """Images with alt text, and none embedded as data: URIs."""
    out = []
    if found.no_alt:
        out.append(
            Check(
                "image_alt",
                WARNING,
                f"{_plural(found.no_alt, 'image')} without alt text: many inboxes block images "
                'at first, and screen readers need the text (alt="" marks a decorative one).',
            )
        )
    else:
        out.append(Check("image_alt", OK, "Every image has alt text."))
    if found.data_uri:
        out.append(
            Check(
                "image_data_uri",
                WARNING,
                f"{_plural(found.data_uri, 'image')} embedded as data: URIs: Gmail and Outlook "
                "do not show them. Link the images instead.",
            )
        )
    return out


def link_checks(urls: list[str], *, production: bool) -> list[Check]:
    """Links to this machine or a private network, and plain http:// links (production)."""
    local, plain = [], []
    for url in dict.fromkeys(urls):
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            continue
        if parts.scheme.lower() not in ("http", "https"):
            continue
        if local_host(host):
            local.append(url)
        elif parts.scheme.lower() == "http":
            plain.append(url)
    if not production:
        return [Check("links", OK, "Links are checked for local hosts and http:// in production.")]
    out = []
    if local:
        out.append(
            Check(
                "local_links",
                BLOCKER,
                f"{_plural(len(local), 'link')} to this machine or a private network, which "
                f"no recipient can open: {_named(local)}.",
            )
        )
    if plain:
        out.append(
            Check(
                "http_links",
                WARNING,
                f"{_plural(len(plain), 'link')} with plain http:// (browsers warn, filters "
                f"distrust them): {_named(plain)}.",
            )
        )
    return out or [Check("links", OK, "Every link is https:// to a public host.")]


def subject_check(subject: str) -> Check:
    """A subject, short enough to be read in the inbox."""
    shown = " ".join(subject.split())
    if not shown:
        return Check("subject", BLOCKER, "The subject is empty.")
    if len(shown) > SUBJECT_LONG:
        return Check(
            "subject",
            WARNING,
            f"The subject has {len(shown)} characters: inboxes cut it after about "
            f"{SUBJECT_LONG}, phones after {SUBJECT_PHONE} (“{shown[:SUBJECT_PHONE]}…”).",
        )
    if len(shown) > SUBJECT_PHONE:
        return Check(
            "subject",
            OK,
            f"The subject has {len(shown)} characters: phones show about the first "
            f"{SUBJECT_PHONE} (“{shown[:SUBJECT_PHONE]}…”).",
        )
    return Check("subject", OK, f"The subject has {len(shown)} characters.")


def preheader_check(preheader: str, visible: str) -> Check:
    """A preheader (the inbox preview line) that is shown and not too long."""
    shown = " ".join(preheader.split())
    if not shown:
        first = visible[:SNIPPET] + ("…" if len(visible) > SNIPPET else "")
        return Check(
            "preheader",
            WARNING,
            f"No preheader: inboxes show the first text of the message instead: “{first}”.",
        )
    if shown not in visible:
        return Check(
            "preheader",
            WARNING,
            "The preheader is not in the message: the layout has no {{ preheader }}.",
        )
    if len(shown) > PREHEADER_LONG:
        return Check(
            "preheader",
            WARNING,
            f"The preheader has {len(shown)} characters: inboxes show at most about "
            f"{PREHEADER_LONG}.",
        )
    return Check("preheader", OK, f"The preheader has {len(shown)} characters.")


def audience_checks(audience: int, tracked: int, never_engaged: int) -> list[Check]:
    """Somebody to send to, and not mostly people who never engage."""
    if audience <= 0:
        # Not a blocker: sending to nobody harms nobody (the campaign is simply done at once).
        return [Check("audience", WARNING, "The audience is empty: nobody would get it.")]
    out = [Check("audience", OK, "The audience is not empty.")]
    if tracked <= 0:
        out.append(
            Check(
                "engagement",
                OK,
                "Engagement unknown: nobody in the audience allows open and click tracking.",
            )
        )
    elif tracked < ENGAGEMENT_MIN_TRACKED:
        out.append(
            Check(
                "engagement",
                OK,
                f"Engagement not judged: fewer than {ENGAGEMENT_MIN_TRACKED} recipients allow "
                "tracking.",
            )
        )
    elif never_engaged / tracked > NEVER_ENGAGED_SHARE:
        out.append(
            Check(
                "engagement",
                WARNING,
                f"{100 * never_engaged / tracked:.0f} % of the recipients who allow tracking got "
                f"{NEVER_ENGAGED_SENT} or more campaigns and never opened or clicked one: "
                "mailbox providers read that as unwanted mail. Narrow the audience.",
            )
        )
    else:
        out.append(
            Check(
                "engagement",
                OK,
                f"{100 * never_engaged / tracked:.0f} % of the recipients who allow tracking "
                "never engaged.",
            )
        )
    return out


def rate_checks(lists: tuple[ListRates, ...], limits: RateLimits, days: int) -> list[Check]:
    """Each list's recent hard-bounce and complaint rates."""
    out = []
    for r in lists:
        period = f"in the last {days} days"
        if not r.handed_over or r.bounce_rate is None or r.complaint_rate is None:
            out.append(Check("list_rates", OK, f"{r.name}: no campaign mail {period}."))
            continue
        of = f"of {r.handed_over:,} messages {period}"
        if r.complaint_rate > limits.complaint_limit:
            level = BLOCKER if r.handed_over >= RATE_MIN_MESSAGES else WARNING
            out.append(
                Check(
                    "complaint_rate",
                    level,
                    f"{r.name}: {_percent(r.complaint_rate)} complaints {of}, over the "
                    f"{_percent(limits.complaint_limit)} at which mailbox providers block "
                    "senders. Find out why before sending again.",
                )
            )
        elif r.complaint_rate > limits.complaint_good:
            out.append(
                Check(
                    "complaint_rate",
                    WARNING,
                    f"{r.name}: {_percent(r.complaint_rate)} complaints {of}, over the "
                    f"{_percent(limits.complaint_good)} mailbox providers ask for.",
                )
            )
        if r.bounce_rate > limits.bounce_limit:
            out.append(
                Check(
                    "bounce_rate",
                    WARNING,
                    f"{r.name}: {_percent(r.bounce_rate)} hard bounces {of}, over "
                    f"{_percent(limits.bounce_limit)}: clean the list.",
                )
            )
        if r.complaint_rate <= limits.complaint_good and r.bounce_rate <= limits.bounce_limit:
            out.append(
                Check(
                    "list_rates",
                    OK,
                    f"{r.name}: {_percent(r.bounce_rate)} hard bounces and "
                    f"{_percent(r.complaint_rate)} complaints {of}.",
                )
            )
    return out


def evaluate(facts: Facts) -> Checklist:
    """Every check, in the order a sender reads them: the message, then audience and lists."""
    msg = read_message(facts.message)
    found = scan(msg.html)
    visible = found.visible()
    urls = found.urls + URL_IN_TEXT.findall(msg.text or "")
    checks = [
        subject_check(facts.subject),
        preheader_check(facts.preheader, visible),
        dkim_check(facts.dkim_domain, msg.from_domain),
        size_check(msg.html, msg.size),
        text_check(visible, msg.text),
        *image_checks(found),
        *link_checks(urls, production=facts.production),
        *(
            audience_checks(facts.audience, facts.tracked, facts.never_engaged)
            if facts.audience is not None
            else ()
        ),
        *rate_checks(facts.lists, facts.rate_limits, facts.rate_days),
    ]
    return Checklist(tuple(checks))
