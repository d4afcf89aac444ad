"""Per-language wording of "please unsubscribe me", of its negations, of reply/forward markers.

All patterns run on text passed through `normalize()`: lower case, accents removed (é -> e,
ü -> u, ą -> a; Polish ł stays), typographic apostrophes made plain. Languages: English,
German, French, Spanish, Italian, Dutch, Portuguese, Swedish, Polish.

It also holds the markers that tell a person's own words from what they quote: attribution
lines ("On ... wrote:" and translations), original-message and forward separators, mail-client
signatures, header blocks, sign-offs and newsletter footers.

A request counts only when a positive pattern matches and no negation pattern matches anywhere
in the same text ("please don't unsubscribe me", "nicht abmelden"). Phrases that contain a
negation but ask to stop mail ("I no longer want to receive", "keine E-Mails mehr",
"je ne veux plus recevoir") are positive patterns of their own.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "ATTRIBUTION_RE",
    "ATTRIBUTION_START_RE",
    "FOOTER_RE",
    "HEADER_LINE_RE",
    "SEPARATOR_RE",
    "SIGNATURE_RE",
    "SIGNOFF_RE",
    "find_negation",
    "find_request",
    "is_exact",
    "normalize",
    "strip_subject_prefixes",
]


_BLANKS = re.compile(r"[ \t]+")
_NOT_WORDS = re.compile(r"[^\w' -]+")


def normalize(text: str) -> str:
    """Lower case, accents stripped, apostrophes and dashes made plain, spaces collapsed."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00b4", "'")
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u00a0", " ")
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _BLANKS.sub(" ", text)


# Gaps between words never cross a sentence or clause end: "I won't. Unsubscribe me." counts.
_W = r"(?:[\w'-]+[ \t\n]+)"  # one word and the space after it
_NEG_GAP = _W + "{0,3}?"  # up to three words between a negation and the verb

# Positive patterns per language: the person asks to be taken off the list.
REQUEST: dict[str, list[str]] = {
    "en": [
        r"\bunsubscribe (?:me|us|my|this|him|her|from)\b",
        r"\b(?:please|pls|plz|kindly)\s+" + _W + r"{0,2}?unsubscribe\b",
        r"\bunsubscribe\s*[,!]?\s*(?:please|pls|plz|thanks|thank you|asap)\b",
        r"\b(?:i|i'd|i'm|we|we'd|we're)\s+" + _W + r"{0,3}?to\s+unsubscribe\b",
        r"\bhow\s+(?:do|can|to|could)\s+(?:i\s+|we\s+)?unsubscribe\b",
        r"\b(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:unsubscribe|remove|take)\s+(?:me|us|my)\b",
        r"\bremove\s+(?:me|us|my\s+(?:e-?mail|address|name|details|data|contact)|this\s+(?:e-?mail|address))\b",
        r"\btake\s+(?:me|us|my\s+(?:e-?mail|address|name))\s+off\b",
        r"\bopt\s*-?\s*(?:me\s+|us\s+)?out\b",
        r"\bstop\s+(?:sending|emailing|e-mailing|mailing|spamming|contacting|messaging)\b",
        r"\b(?:don't|dont|do not|never)\s+(?:send|email|e-mail|mail|contact|write)\s+(?:me|us)\b",
        r"\bno\s+(?:more|further)\s+(?:e-?mails?|mails?|newsletters?|messages|marketing|spam)\b",
        r"\b(?:no longer|don't|dont|do not)\s+(?:want|wish|like|need)\s+to\s+(?:receive|get|be on|hear)\b",
    ],
    "de": [
        r"\b(?:abmelden|abzumelden|abmeldung|austragen|auszutragen|abbestellen|abzubestellen"
        r"|abbestellung|entfernung aus)\b",
        r"\bmelde[nt]?\s+(?:sie\s+)?(?:mich|uns)\s+" + _W + r"{0,4}?ab\b",
        r"\btrage[nt]?\s+(?:sie\s+)?(?:mich|uns)\s+" + _W + r"{0,4}?aus\b",
        r"\b(?:mich|meine\s+(?:e-?mail(?:-?adresse)?|adresse|daten))\s+"
        + _W
        + r"{0,5}?(?:entfernen|loschen|streichen)\b",
        r"\b(?:entfernen|loschen|streichen)\s+sie\s+(?:bitte\s+)?(?:mich|meine)\b",
        r"\bkeine\s+(?:weiteren\s+)?(?:e-?mails?|mails?|newsletter|nachrichten|werbung|zusendungen)\s+mehr\b",
        r"\bnicht\s+mehr\s+" + _W + r"{0,2}?(?:erhalten|bekommen|empfangen|zusenden|zuschicken"
        r"|schicken|senden)\b",
        r"\b(?:newsletter|abo|abonnement)\s+(?:bitte\s+)?(?:kundigen|beenden|stornieren)\b",
        r"\b(?:von|aus)\s+(?:der|ihrer|eurer|dieser|dem|ihrem|eurem|diesem)\s+(?:\w+-?)?(?:liste|verteiler)"
        r"\s+(?:\w+\s+)?(?:streichen|nehmen|entfernen|loschen)\b",
    ],
    "fr": [
        r"\b(?:desabonner|desinscrire|desabonnez|desinscrivez|desabonnement|desinscription"
        r"|desabonne-moi|desinscris-moi)\b",
        r"\b(?:retirez|supprimez|enlevez|effacez|rayez)[- ]?(?:moi|mon adresse|mon e-?mail|mon courriel)\b",
        r"\bme\s+(?:retirer|supprimer|rayer|enlever)\s+de\b",
        r"\bne\s+(?:veux|souhaite|desire|voudrais|souhaiterais|veut)\s+plus\s+"
        + _W
        + r"{0,2}?recevoir\b",
        r"\bne\s+plus\s+(?:\w+\s+)?recevoir\b",
        r"\bne\s+m'?(?:envoyez|ecrivez)\s+plus\b",
        r"\bne\s+plus\s+(?:m'|me\s+)?(?:envoyer|ecrire|contacter)\b",
        r"\b(?:arretez|cessez)\s+(?:de\s+)?(?:m'?envoyer|m'?ecrire)\b",
    ],
    "es": [
        r"\b(?:dar|darme|darnos|den|deme|denme|de|dame)\s+de\s+baja\b",
        r"\b(?:solicito|pido|quiero|deseo)\s+(?:la\s+)?baja\b",
        r"\b(?:cancelar|anular|cancelen|anulen|cancela)\s+(?:la\s+|mi\s+)?(?:suscripcion|subscripcion)\b",
        r"\b(?:desuscrib|desinscrib|desubscrib)\w*",
        r"\b(?:eliminen|borren|quiten|saquen|eliminar|borrar|quitar|sacar)(?:me|nos)?\s+"
        + _W
        + r"{0,2}?de\s+(?:la|su|esta|vuestra|sus)\s+(?:lista|listas|base de datos)\b",
        r"\b(?:eliminenme|borrenme|quitenme|saquenme|eliminarme|borrarme|sacarme|quitarme)\b",
        r"\bno\s+(?:quiero|deseo)\s+(?:\w+\s+)?recibir\s+(?:mas|ningun)",
        r"\bno\s+(?:me\s+)?(?:envien|manden|escriban)\s+mas\b",
        r"\bdejar de recibir\b",
    ],
    "it": [
        r"\b(?:disiscriv|disiscrizion|cancellami|cancellatemi|cancellarmi|rimuovetemi|rimuovermi"
        r"|rimuovimi|toglietemi|togliermi|toglimi|eliminatemi|eliminarmi)\w*",
        r"\b(?:cancellare|annullare|revocare|annulla|cancella)\s+(?:la\s+|l'|mia\s+|la mia\s+)?"
        r"(?:iscrizione|sottoscrizione)\b",
        r"\b(?:cancellazione|annullamento)\s+(?:dalla|della|dell'|iscrizione)",
        r"\bnon\s+(?:voglio|desidero)\s+piu\s+(?:\w+\s+)?ricevere\b",
        r"\bnon\s+(?:inviatemi|mandatemi|scrivetemi)\s+piu\b",
    ],
    "nl": [
        r"\b(?:afmelden|uitschrijven|afmelding|uitschrijving)\b",
        r"\bmeld\s+(?:mij|me|ons)\s+" + _W + r"{0,3}?af\b",
        r"\bschrijf\s+(?:mij|me|ons)\s+" + _W + r"{0,3}?uit\b",
        r"\bverwijder\s+(?:mij|me|mijn\s+(?:e-?mail(?:adres)?|adres|gegevens))\b",
        r"\bgeen\s+(?:\w+\s+)?(?:e-?mails?|mails?|nieuwsbrie\w+|berichten)\s+meer\b",
        r"\bniet\s+meer\s+(?:\w+\s+)?ontvangen\b",
        r"\bhaal\s+(?:mij|me)\s+" + _W + r"{0,2}?(?:van|uit)\s+(?:de|jullie|uw|deze)\s+"
        r"(?:lijst|mailinglijst|verzendlijst|mailing)",
    ],
    "pt": [
        r"\b(?:descadastr|desinscrev|dessubscrev|desassin)\w*",
        r"\b(?:cancelar|anular|remover)\s+(?:a\s+)?(?:minha\s+)?(?:inscricao|assinatura|subscricao)\b",
        r"\b(?:remova|removam|retire|retirem|tire|tirem|exclua|excluam|apague|apaguem)[- ]?(?:me|o meu|meu)\b",
        r"\b(?:remover|retirar|excluir|tirar)\s+(?:o\s+)?(?:meu|me)\s+(?:e-?mail|endereco|contato|nome)\b",
        r"\bnao\s+(?:quero|desejo)\s+(?:mais\s+)?receber\b",
        r"\bdeixar de receber\b",
        r"\bnao\s+(?:me\s+)?(?:enviem|mandem)\s+mais\b",
    ],
    "sv": [
        r"\b(?:avregistrera|avregistrering|avprenumerera|avanmal\w*)\b",
        r"\b(?:avsluta|avbryt|sag upp)\s+(?:min\s+)?prenumeration\w*",
        r"\bta\s+bort\s+(?:mig|min\s+(?:e-?post\w*|adress|mejl\w*))\b",
        r"\bsluta\s+(?:skicka|maila|mejla)\b",
        r"\bvill\s+inte\s+(?:langre\s+)?(?:ha|fa|motta|ta emot)\b",
        r"\b(?:inga|inte)\s+fler\s+(?:mejl|mail|e-post|nyhetsbrev)\b",
        r"\bstryk\s+mig\b",
    ],
    "pl": [
        r"\b(?:wypisz|wypiszcie|wypisac|wypisanie|wypisania)\b",
        r"\b(?:usun|usuncie|usunac|usuniecie)\s+(?:mnie|moj|moje|moja|mojego)\b",
        r"\brezygn\w*\s+(?:z\s+)?(?:subskrypcj|newslett|mailing|otrzymywan|prenumerat)",
        r"\brezygnacja\b",
        r"\b(?:anuluj|anulujcie|anulowac)\s+(?:moja\s+)?(?:subskrypcj|prenumerat)\w*",
        r"\bnie\s+(?:chce|chcemy)\s+(?:juz\s+)?(?:otrzymywac|dostawac)\b",
        r"\bprosze\s+o\s+(?:wypisanie|usuniecie)\b",
    ],
}

# Negations: the person asks NOT to be unsubscribed, or says they did not ask for it.
NEGATION: dict[str, list[str]] = {
    "en": [
        r"\b(?:don't|dont|do not|does not|doesn't|never|not|no need to|won't|wouldn't|didn't"
        r"|did not|shouldn't|should not)[ \t\n]+"
        + _NEG_GAP
        + r"(?:unsubscrib\w*|remov\w*|take\s+me\s+off|opt\s*-?\s*(?:me\s+)?out|stop\s+sending)",
        # questions about an unsubscribe that already happened
        r"\b(?:why|who)\b[^.!?\n]{0,30}\b(?:unsubscrib|remov)\w*",
        r"\b(?:did|have|has)\s+(?:you|someone|somebody|anyone)\s+(?:\w+\s+)?(?:unsubscrib|remov)\w*",
    ],
    "de": [
        r"\b(?:nicht|nie|niemals|kein)[ \t\n]+"
        + _NEG_GAP
        + r"(?:abmelden|abzumelden|austragen|auszutragen|abbestellen|abzubestellen|ab|aus"
        r"|entfernen|loschen|kundigen)\b"
    ],
    "fr": [
        r"\bne\s+(?:me\s+)?(?:desabonn|desinscri|retir|supprim)\w*\s+pas\b",
        r"\bpas\s+" + _W + r"{0,2}?(?:me\s+)?(?:desabonn|desinscri|retir|supprim)",
    ],
    "es": [
        r"\bno\s+" + _NEG_GAP + r"(?:den\s+de\s+baja|dar\s+de\s+baja|darme\s+de\s+baja"
        r"|cancel\w*|anul\w*|desuscrib\w*|elimin\w*|borr\w*)"
    ],
    "it": [r"\bnon\s+" + _NEG_GAP + r"(?:disiscriv|cancell|rimuov|togli|elimin)\w*"],
    "nl": [r"\b(?:niet|nooit)\s+" + _NEG_GAP + r"(?:afmelden|uitschrijven|verwijderen|af|uit)\b"],
    "pt": [r"\bnao\s+" + _NEG_GAP + r"(?:descadastr|cancel|remov|retir|exclu|anul|desinscrev)\w*"],
    "sv": [
        r"\binte\s+" + _NEG_GAP + r"(?:avregistrer|avsluta|avprenumer|avanmal|ta\s+bort|stryk)\w*"
    ],
    "pl": [r"\bnie\s+" + _NEG_GAP + r"(?:wypis|usun|usuw|rezygn|anul)\w*"],
}

# A subject or a line that is nothing but one of these (after normalize and trimming
# punctuation) is a request on its own.
EXACT = frozenset(
    {
        "unsubscribe",
        "unsubscribe me",
        "please unsubscribe",
        "unsubscribe please",
        "please unsubscribe me",
        "unsubscribe me please",
        "remove",
        "remove me",
        "remove me please",
        "please remove me",
        "stop",
        "opt out",
        "optout",
        "opt-out",
        "unsub",
        "abmelden",
        "abmeldung",
        "austragen",
        "abbestellen",
        "bitte abmelden",
        "bitte austragen",
        "abmelden bitte",
        "stopp",
        "desabonner",
        "desinscrire",
        "desabonnement",
        "desinscription",
        "desabonnez-moi",
        "se desabonner",
        "se desinscrire",
        "desinscrivez-moi",
        "baja",
        "darme de baja",
        "dar de baja",
        "cancelar suscripcion",
        "desuscribir",
        "desuscribirme",
        "disiscrivimi",
        "disiscrizione",
        "cancellami",
        "cancellazione",
        "disiscriviti",
        "afmelden",
        "uitschrijven",
        "afmelding",
        "descadastrar",
        "descadastre",
        "descadastrar-me",
        "cancelar inscricao",
        "cancelar subscricao",
        "avregistrera",
        "avsluta prenumeration",
        "avregistrering",
        "wypisz",
        "wypisz mnie",
        "rezygnacja",
        "rezygnuje",
        "wypisanie",
    }
)

_REQUEST_RES = [(lang, re.compile(p)) for lang, pats in REQUEST.items() for p in pats]
_NEGATION_RES = [(lang, re.compile(p)) for lang, pats in NEGATION.items() for p in pats]

_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|r|rif|antw|ant|odp|res|fw|fwd|wg|tr|rv|enc|vb|pd|doorst|i)"
    r"\s*(?:\[\d+\])?\s*:\s*|\[[^\]]{0,40}\]\s*)+",
    re.IGNORECASE,
)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fw|fwd|wg|tr|rv|enc|vb|pd|doorst|i)\s*:", re.IGNORECASE)


def strip_subject_prefixes(subject: str) -> tuple[str, bool, bool]:
    """(subject without Re:/AW:/Fwd:/[tag] prefixes, was it a reply, was it a forward)."""
    m = _SUBJECT_PREFIX.match(subject)
    if not m:
        return subject.strip(), False, False
    prefix = m.group(0)
    return subject[m.end() :].strip(), True, bool(_FORWARD_PREFIX.match(prefix))


def is_exact(text: str) -> bool:
    """True when the whole text (normalized, punctuation trimmed) is a bare request word."""
    core = _NOT_WORDS.sub(" ", normalize(text))
    return " ".join(core.split()) in EXACT


def find_request(text: str) -> tuple[str, str] | None:
    """(language, matched phrase) of the first request in normalized text, or None."""
    for lang, rx in _REQUEST_RES:
        m = rx.search(text)
        if m:
            return lang, m.group(0)
    return None


def find_negation(text: str) -> tuple[str, str] | None:
    """(language, matched phrase) of a negated request in normalized text, or None."""
    for lang, rx in _NEGATION_RES:
        m = rx.search(text)
        if m:
            return lang, m.group(0)
    return None


# -- markers of quoted text, forwards and signatures (run on normalized lines) -----------------

_WROTE = (
    r"(?:wrote|writes|schrieb|a ecrit|escribio|ha scritto|schreef|escreveu|skrev"
    r"|napisa[lł]\w*(?:\(a\))?|pisze|kirjoitti|scrisse|написал\w*)"
)
ATTRIBUTION_RE = re.compile(r"^.{0,300}\b" + _WROTE + r"\b.{0,160}:\s*$")
ATTRIBUTION_START_RE = re.compile(
    r"^(?:on|am|le|el|il|op|em|den|dnia|w dniu|\d|mon|tue|wed|thu|fri|sat|sun|pon|wt|sr|czw|pt"
    r"|sob|nd|lun|mar|mer|jeu|ven|sam|dim)\b"
)
SEPARATOR_RE = re.compile(
    r"^(?:-{2,}\s*(?:original message|ursprungliche nachricht|message d'origine|mensaje original"
    r"|messaggio originale|oorspronkelijk bericht|mensagem original|ursprungligt meddelande"
    r"|oryginalna wiadomosc|forwarded message|weitergeleitete nachricht|message transfere"
    r"|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada"
    r"|vidarebefordrat meddelande|wiadomosc przekazana|przekazana wiadomosc)"
    r"|begin forwarded message|anfang der weitergeleiteten nachricht|debut du message reexpedie"
    r"|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht"
    r"|inicio da mensagem reencaminhada|vidarebefordrat brev|_{8,}|-{8,}|={8,}|\*{8,})"
)
SIGNATURE_RE = re.compile(
    r"^(?:--|-- |__)$|^(?:sent from|get outlook for|gesendet von|von meinem \w+ gesendet"
    r"|envoye de mon|envoye depuis|enviado desde|enviado do meu|inviato da|verzonden (?:vanaf|met)"
    r"|skickat fran|wyslane z|wysłane z|sent via|sent with)\b"
)
HEADER_LINE_RE = re.compile(
    r"^\*?(?:from|sent|to|cc|subject|date|von|gesendet|an|betreff|datum|de|envoye|a|objet|para"
    r"|enviado|asunto|fecha|da|inviato|oggetto|data|van|verzonden|aan|onderwerp|enviada|assunto"
    r"|fran|skickat|till|amne|od|wyslano|do|temat)(?: el| le| am| on)?\*?\s*:",
    re.IGNORECASE,
)
SIGNOFF_RE = re.compile(
    r"^(?:thanks|thank you|many thanks|cheers|best|regards|best regards|kind regards|warm regards"
    r"|mit freundlichen grussen|freundliche grusse|viele grusse|beste grusse|gruss|grusse|lg|mfg"
    r"|cordialement|bien a vous|salutations|saludos|un saludo|atentamente|cordiali saluti|saluti"
    r"|met vriendelijke groet|vriendelijke groet|groeten|groet|atenciosamente|abracos|cumprimentos"
    r"|med vanliga halsningar|vanliga halsningar|halsningar|mvh|pozdrawiam|z powazaniem)[\s,.!]*$"
)
FOOTER_RE = re.compile(  # our footer (or any newsletter's) shown unquoted: the original begins
    r"click here|manage (?:your )?(?:preferences|subscription)|update your preferences"
    r"|you(?:'re| are) receiving|you received this|you receive this|because you (?:subscribed"
    r"|signed up)|change what you receive|view (?:it )?in (?:your )?browser|sie erhalten diese"
    r"|vous recevez ce|recibes este|ricevi questa|u ontvangt deze|voce recebe|du far detta"
    r"|otrzymujesz te"
    r"|all rights reserved|this (?:e-?mail|message) was sent|\(c\) ?\d{4}|©|hier klicken"
    r"|cliquez ici|haga clic|clicca qui|klik hier|clique aqui|klicka har|kliknij"
    r"|einstellungen verwalten|abmeldelink|lien de desinscription|enlace de baja"
)
