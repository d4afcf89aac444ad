"""Signed tokens, one salt per purpose; expired and invalid are distinct errors."""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, Signer, URLSafeTimedSerializer

from listmgr.errors import TokenExpired, TokenInvalid
from listmgr.models import MAX_ID

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_DIGITS = re.compile(r"[0-9]{1,18}")


def _b36(n: int) -> str:
    if n < 0:
        raise ValueError("negative id")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def _unb36(s: str) -> int:
    value = int(s, 36) if s and len(s) <= 13 and all(c in _B36 for c in s) else -1
    if not 0 <= value <= MAX_ID:
        raise TokenInvalid("This link is not valid.")
    return value


@dataclass(frozen=True)
class UnsubscribeToken:
    subscriber_id: int
    list_id: int
    campaign_id: int | None = None
    epoch: int = 0  # the subscriber's link epoch when the link was made


@dataclass(frozen=True)
class ManageToken:
    subscriber_id: int
    epoch: int = 0


@dataclass(frozen=True)
class ConfirmToken:
    subscriber_id: int
    list_id: int
    nonce: str = ""  # the membership's confirmation nonce ("" in links from before nonces)


@dataclass(frozen=True)
class UndoToken:
    subscriber_id: int
    list_ids: tuple[int, ...]  # the confirmed memberships an unsubscribe ended
    at: str  # their unsubscribed_at (ISO): only memberships still ended then come back
    everything: bool  # the unsubscribe was from everything (its suppression goes too)


@dataclass(frozen=True)
class AddressToken:
    subscriber_id: int
    epoch: int
    old_email: str  # spent once the address is no longer this one
    new_email: str


@dataclass(frozen=True)
class DataLinkToken:
    subscriber_id: int
    epoch: int
    nonce: str


class BatchSigner:
    """One purpose's signer with its key derived once (itsdangerous derives it per token)."""

    def __init__(self, signer: Signer) -> None:
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep = signer.sep.decode("ascii") if isinstance(signer.sep, bytes) else signer.sep

    def sign(self, *ids: int | None) -> str:
        value = Tokens._pack(*ids)
        mac = self._mac.copy()
        mac.update(value.encode("ascii"))
        return value + self._sep + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


class Tokens:
    """Makes and reads every signed token listmgr hands out."""

    def __init__(
        self,
        secret_key: str,
        confirm_max_age_days: int = 7,
        data_link_max_age_minutes: int = 60,
        unsubscribe_undo_minutes: int = 30,
    ) -> None:
        self.secret_key = secret_key
        self.confirm_max_age = confirm_max_age_days * 86400
        self.data_link_max_age = data_link_max_age_minutes * 60
        self.undo_max_age = unsubscribe_undo_minutes * 60
        # Compact signers keep tokens short enough for an address local part (<= 64 chars).
        self._unsub = Signer(secret_key, salt="unsubscribe", sep=".")
        self._manage = Signer(secret_key, salt="manage", sep=".")
        self._bounce = Signer(secret_key, salt="bounce", sep=".")
        self._request = Signer(secret_key, salt="unsubscribe-request", sep=".")
        self._repermission = Signer(secret_key, salt="repermission", sep=".")
        # Engagement and web versions: a click names campaign, recipient and link; an open
        # campaign and recipient; a web version campaign, recipient and list; a campaign
        # reference names only the campaign (its web version for no one in particular).
        self._click = Signer(secret_key, salt="click", sep=".")
        self._open = Signer(secret_key, salt="open", sep=".")
        self._webview = Signer(secret_key, salt="webview", sep=".")
        self._campaign = Signer(secret_key, salt="campaign", sep=".")
        # Message-IDs of campaign mail carry a tag only we can make: naming one in a bounce,
        # complaint or reply proves the sender saw that very message (ids alone are guessable).
        self._msgid = hmac.new(
            Signer(secret_key, salt="message-id").derive_key(), digestmod="sha256"
        )
        self._confirm = URLSafeTimedSerializer(secret_key, salt="confirm")
        self._data_link = URLSafeTimedSerializer(secret_key, salt="data-link")
        self._undo = URLSafeTimedSerializer(secret_key, salt="unsubscribe-undo")
        self._address = URLSafeTimedSerializer(secret_key, salt="address-change")

    # -- compact ids -------------------------------------------------------------------------
    @staticmethod
    def _pack(*ids: int | None) -> str:
        return "-".join(_b36(i or 0) for i in ids)

    @staticmethod
    def _unpack(value: str, count: int, optional: int = 0) -> list[int]:
        """`count` ids, the last `optional` of them absent (0) in the short form."""
        parts = value.split("-")
        if not count - optional <= len(parts) <= count:
            raise TokenInvalid("This link is not valid.")
        return [_unb36(p) for p in parts] + [0] * (count - len(parts))

    @staticmethod
    def with_epoch(*ids: int | None, epoch: int = 0) -> tuple[int | None, ...]:
        """The ids a link names, with the link epoch appended only when there is one (links
        made before epochs, and every link of a subscriber who never reset them, stay short)."""
        return (*ids, epoch) if epoch else ids

    def _unsign(self, signer: Signer, token: str) -> str:
        try:
            return signer.unsign(token).decode("ascii")
        except (BadSignature, UnicodeDecodeError, ValueError):
            raise TokenInvalid(
                "This link is not valid. It may have been cut off or changed."
            ) from None

    def _timed(
        self, serializer: URLSafeTimedSerializer, token: str, max_age: int, expired: str
    ) -> Any:
        """A timed token's data: TokenExpired (saying `expired`) after max_age, else TokenInvalid
        for anything not signed by us."""
        try:
            return serializer.loads(token, max_age=max_age)
        except SignatureExpired:
            raise TokenExpired(expired) from None
        except (BadSignature, UnicodeDecodeError, ValueError):
            raise TokenInvalid(
                "This link is not valid. It may have been cut off or changed."
            ) from None

    def batch_signer(self, purpose: str) -> BatchSigner:
        """Signs many tokens of one purpose (unsubscribe, manage, bounce) fast, e.g. for every
        recipient of a campaign; the tokens equal those of the methods below."""
        signer = {
            "unsubscribe": self._unsub,
            "manage": self._manage,
            "bounce": self._bounce,
            "click": self._click,
            "open": self._open,
            "webview": self._webview,
        }[purpose]
        return BatchSigner(signer)

    # -- unsubscribe (never expires, whatever the epoch) --------------------------------------
    def unsubscribe(
        self, subscriber_id: int, list_id: int, campaign_id: int | None = None, epoch: int = 0
    ) -> str:
        ids = self.with_epoch(subscriber_id, list_id, campaign_id, epoch=epoch)
        return self._unsub.sign(self._pack(*ids)).decode("ascii")

    def read_unsubscribe(self, token: str) -> UnsubscribeToken:
        sid, lid, cid, epoch = self._unpack(self._unsign(self._unsub, token), 4, optional=1)
        return UnsubscribeToken(sid, lid, cid or None, epoch)

    # -- preference center (no expiry; ends when the subscriber's link epoch moves on) -------
    def manage(self, subscriber_id: int, epoch: int = 0) -> str:
        return self._manage.sign(self._pack(*self.with_epoch(subscriber_id, epoch=epoch))).decode(
            "ascii"
        )

    def read_manage(self, token: str) -> ManageToken:
        sid, epoch = self._unpack(self._unsign(self._manage, token), 2, optional=1)
        return ManageToken(sid, epoch)

    # -- VERP bounce address ------------------------------------------------------------------
    def bounce(
        self, subscriber_id: int, campaign_id: int | None = None, list_id: int | None = None
    ) -> str:
        return self._bounce.sign(self._pack(subscriber_id, campaign_id, list_id)).decode("ascii")

    def read_bounce(self, token: str) -> tuple[int, int | None, int | None]:
        sid, cid, lid = self._unpack(self._unsign(self._bounce, token), 3)
        return sid, cid or None, lid or None

    # -- engagement and web versions (never expire) --------------------------------------------
    def click(self, campaign_id: int, subscriber_id: int, link_id: int) -> str:
        return self._click.sign(self._pack(campaign_id, subscriber_id, link_id)).decode("ascii")

    def read_click(self, token: str) -> tuple[int, int, int]:
        """(campaign, subscriber, link); link 0 is the campaign's hidden trap link."""
        cid, sid, lid = self._unpack(self._unsign(self._click, token), 3)
        return cid, sid, lid

    def open(self, campaign_id: int, subscriber_id: int) -> str:
        return self._open.sign(self._pack(campaign_id, subscriber_id)).decode("ascii")

    def read_open(self, token: str) -> tuple[int, int]:
        cid, sid = self._unpack(self._unsign(self._open, token), 2)
        return cid, sid

    def webview(self, campaign_id: int, subscriber_id: int, list_id: int, epoch: int = 0) -> str:
        ids = self.with_epoch(campaign_id, subscriber_id, list_id, epoch=epoch)
        return self._webview.sign(self._pack(*ids)).decode("ascii")

    def read_webview(self, token: str) -> tuple[int, int, int, int]:
        """(campaign, subscriber, list, link epoch); subscriber 0: for no one in particular."""
        cid, sid, lid, epoch = self._unpack(self._unsign(self._webview, token), 4, optional=1)
        return cid, sid, lid, epoch

    def campaign_ref(self, campaign_id: int) -> str:
        return self._campaign.sign(self._pack(campaign_id)).decode("ascii")

    def read_campaign_ref(self, token: str) -> int:
        return self._unpack(self._unsign(self._campaign, token), 1)[0]

    # -- unsubscribe request by e-mail without proof (never expires) --------------------------
    def unsubscribe_request(self, subscriber_id: int, inbound_id: int) -> str:
        return self._request.sign(self._pack(subscriber_id, inbound_id)).decode("ascii")

    def read_unsubscribe_request(self, token: str) -> tuple[int, int]:
        sid, iid = self._unpack(self._unsign(self._request, token), 2)
        return sid, iid

    # -- "keep me subscribed" of a re-permission request (the request's deadline applies) --
    def repermission(self, request_id: int) -> str:
        return self._repermission.sign(self._pack(request_id)).decode("ascii")

    def read_repermission(self, token: str) -> int:
        return self._unpack(self._unsign(self._repermission, token), 1)[0]

    # -- Message-ID tags of campaign mail ---------------------------------------------------
    def message_tag(self, campaign_id: int, delivery_id: int) -> str:
        """20 base32 characters (100 bits) binding a Message-ID to one delivery row."""
        mac = self._msgid.copy()
        mac.update(f"{campaign_id}.{delivery_id}".encode("ascii"))
        return base64.b32encode(mac.digest()[:15]).decode("ascii").lower()[:20]

    def read_message_id(self, value: str) -> tuple[int, int] | None:
        """(campaign, delivery) of a campaign Message-ID we made, else None."""
        local = value.strip().strip("<>").partition("@")[0]
        parts = local.split(".")
        if len(parts) != 5 or not all(_DIGITS.fullmatch(p) for p in parts[:2]):
            return None
        cid, did = int(parts[0]), int(parts[1])
        if cid < 1 or did < 1:
            return None
        if not hmac.compare_digest(parts[4].lower(), self.message_tag(cid, did)):
            return None
        return cid, did

    # -- confirmation (expires; single use through the membership's nonce) -------------------
    def confirm(self, subscriber_id: int, list_id: int, nonce: str = "") -> str:
        return self._confirm.dumps([subscriber_id, list_id, nonce])

    def read_confirm(self, token: str) -> ConfirmToken:
        try:
            data = self._confirm.loads(token, max_age=self.confirm_max_age)
        except SignatureExpired:
            raise TokenExpired("This confirmation link has expired.") from None
        except (BadSignature, UnicodeDecodeError, ValueError):
            raise TokenInvalid("This confirmation link is not valid.") from None
        found = _confirm_ids(data)
        if found is None:
            raise TokenInvalid("This confirmation link is not valid.")
        return found

    def read_confirm_unverified_age(self, token: str) -> ConfirmToken | None:
        """Ids from a correctly signed but expired confirm token (to offer a fresh link)."""
        try:
            data = self._confirm.loads(token)
        except (BadSignature, UnicodeDecodeError, ValueError):
            return None
        return _confirm_ids(data)

    # -- export and erase (one hour, single use through the subscriber's access nonce) --------
    def data_link(self, subscriber_id: int, epoch: int, nonce: str) -> str:
        return self._data_link.dumps([subscriber_id, epoch, nonce])

    def read_data_link(self, token: str) -> DataLinkToken:
        data = self._timed(
            self._data_link,
            token,
            self.data_link_max_age,
            "This link has expired: links to download or erase your data "
            "work for one hour. Please ask for a new one from the "
            "preferences link in any of our emails.",
        )
        if (
            not isinstance(data, list)
            or len(data) != 3
            or not all(_is_id(x) for x in data[:2])
            or not isinstance(data[2], str)
            or not data[2]
        ):
            raise TokenInvalid("This link is not valid.")
        return DataLinkToken(data[0], data[1], data[2])

    # -- undoing an unsubscribe (a short while; spent once the memberships are back) ---------
    def unsubscribe_undo(
        self, subscriber_id: int, list_ids: list[int], at: str, everything: bool
    ) -> str:
        return self._undo.dumps([subscriber_id, list_ids, at, everything])

    def read_unsubscribe_undo(self, token: str) -> UndoToken:
        data = self._timed(
            self._undo,
            token,
            self.undo_max_age,
            "It is too late to undo this: please subscribe again from our sign-up form.",
        )
        if (
            not isinstance(data, list)
            or len(data) != 4
            or not _is_id(data[0])
            or not isinstance(data[1], list)
            or not data[1]
            or not all(_is_id(x) for x in data[1])
            or not isinstance(data[2], str)
            or not isinstance(data[3], bool)
        ):
            raise TokenInvalid("This link is not valid.")
        return UndoToken(data[0], tuple(data[1]), data[2], data[3])

    # -- a change of address (expires like confirmation links; spent by the change itself) --
    def address_change(self, subscriber_id: int, epoch: int, old_email: str, new: str) -> str:
        return self._address.dumps([subscriber_id, epoch, old_email, new])

    def read_address_change(self, token: str) -> AddressToken:
        data = self._timed(
            self._address,
            token,
            self.confirm_max_age,
            "This link has expired. Please ask again from your preferences.",
        )
        if (
            not isinstance(data, list)
            or len(data) != 4
            or not all(_is_id(x) for x in data[:2])
            or not all(isinstance(x, str) and x for x in data[2:])
        ):
            raise TokenInvalid("This link is not valid.")
        return AddressToken(data[0], data[1], data[2], data[3])


def _is_id(value: object) -> bool:
    """An id (or a count such as a link epoch) that a database column can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def _confirm_ids(data: object) -> ConfirmToken | None:
    """[subscriber, list, nonce], or [subscriber, list] as links made before nonces read."""
    if not isinstance(data, list) or len(data) not in (2, 3):
        return None
    if not all(_is_id(x) for x in data[:2]):
        return None
    nonce = data[2] if len(data) == 3 else ""
    if not isinstance(nonce, str):
        return None
    return ConfirmToken(data[0], data[1], nonce)
