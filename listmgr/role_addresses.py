"""Role addresses: mailboxes of a function, not of a person (abuse@, postmaster@, noreply@).
Mail to them is read by whoever holds the role, if anyone; they complain and trap more than
people, so the reputation page flags them. Pure: no database.

The list is kept conservative: only local parts that name a function on nearly every domain.
Generic ones such as info@ or sales@ are often a small business's only address and are left
out on purpose (a marketer can still suppress them by hand).
"""

from __future__ import annotations

ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse",  # RFC 2142
        "postmaster",  # RFC 5321, RFC 2142
        "hostmaster",  # RFC 2142
        "webmaster",  # RFC 2142
        "security",  # RFC 2142
        "noc",  # RFC 2142
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
    }
)


def local_part(email: str) -> str:
    """The local part in lower case, without a +tag (postmaster+x@ is postmaster@)."""
    local = email.rpartition("@")[0] if "@" in email else email
    return local.split("+", 1)[0].strip().strip('"').lower()


def is_role(email: str) -> bool:
    """True when the address names a function (see ROLE_LOCAL_PARTS), in any letter case."""
    return local_part(email) in ROLE_LOCAL_PARTS


def prefixes() -> list[str]:
    """The starts of every stored (lower-case) role address: "abuse@", "abuse+", ..."""
    return sorted(p for local in ROLE_LOCAL_PARTS for p in (local + "@", local + "+"))
