"""Invitations to leave the platform beyond the English rules, and meeting IDs.

Rules read the normalised text (lower case, ASCII digits, accents kept) in Spanish,
Portuguese, French, German, Italian, Hindi/Urdu in Latin script, Russian, Turkish,
Indonesian, Chinese, Japanese and Korean:

- requests for someone's number, e-mail or contact ("pásame tu número", "gib mir deine
  Nummer", "apna number bhejo");
- moving the conversation or the deal outside ("hablemos fuera de aquí", "sem taxa se for
  por fora", "platform ke bahar");
- messenger invitations and handles ("me chama no zap", "schreib mir bei WhatsApp",
  "微信号:…", "카카오톡 ID: …") and Discord tags;
- a personal website offered for contact, booking or payment;
- meeting IDs with or without a passcode, and Google Meet codes.

A refusal ("I can't share my number", "no puedo darte mi número") is not an invitation:
:func:`is_refusal` says so for the sentence around a hit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from moderation.domains import is_domain
from moderation.first_characters import compile_guarded, factor_alternation
from moderation.keywords import Keywords, Span, trie_pattern, windows
from moderation.normalise import CHARACTER_TABLE

InvitationKind = Literal["messenger", "off_platform_request", "link", "meeting"]

_MESSENGERS: Final = factor_alternation(
    r"(?:what'?s ?app|whatsap+|watsap+|wh?atsapp|whats|wts?p|wsp|zap|zapzap|wa|telegram|tele"
    r"|tg|skype|signal|we ?chat|weixin|viber|discord|insta(?:gram)?|ig|snap(?:chat)?|line"
    r"|kakao(?: ?talk)?|ka ?talk|facebook|messenger|threema|imo|botim|вотсап|ватсап|телеграм"
    r"|телеге|вайбер|微信|微信号|カカオトーク|ライン|카톡|카카오톡|라인)"
)
_YOUR: Final = factor_alternation(
    r"(?:tu|tus|teu|tua|seu|sua|ton|ta|tes|votre|vos|deine|deinen|dein|ihre|il tuo|la tua"
    r"|tuo|apna|apni|apne|aapka|aapna|свой|свою|твой|твою|ваш|kamu|numarani|numaran)"
)
_CONTACT_NOUNS: Final = factor_alternation(
    r"(?:número|numero|numéro|nummer|handynummer|telefonnummer|number|no|nomor|numara\w*"
    r"|teléfono|telefono|telefone|téléphone|celular|cel|móvil|movil|portable|handy|contato"
    r"|contacto|contact|contatto|kontakt|kontaktdaten|coordonnées|correo(?: personal)?"
    r"|e-?mail(?: perso(?:nal|nnel)?)?|mail(?: perso)?|whats|zap|whatsapp|insta|telegram"
    r"|номер|телефон|почту|контакт|hp|wa)"
)
_GIVE: Final = factor_alternation(
    r"(?:pásame|pasame|pasa|dame|da|mándame|mandame|envíame|enviame|manda|passa|me passa"
    r"|me manda|me dá|me da|me envia|donne|donne-moi|envoie|envoie-moi|file-moi|gib|gib mir"
    r"|schick|schick mir|sende|dammi|mandami|dai|bhejo|bhej|bhejein|bhej dein|do|de|dein"
    r"|dedo|de do|share karo|dijiye|дай|дайте|скинь|пришли|minta|bagi|verir misin|alabilir"
    r"|me das|me dás|tu me donnes|hast du|tienes|tem|você tem|vc tem|hai)"
)
_OUTSIDE: Final = factor_alternation(
    r"(?:fuera de (?:la plataforma|aquí|aqui|acá|aca|la app|la página|la pagina|este sitio)"
    r"|por fuera|fora daqui|fora da plataforma|por fora|en dehors de (?:la plateforme|ce site|ici)"
    r"|ailleurs|hors plateforme|außerhalb der plattform|ausserhalb der plattform|woanders"
    r"|fuori dalla piattaforma|fuori da qui|altrove|platform ke bahar|site ke bahar|bahar"
    r"|baahar|yahan se bahar|вне платформы|напрямую|за пределами|di luar|dişarida|otro lado"
    r"|sin la plataforma|sem a plataforma|ohne (?:die )?plattform|sans la plateforme"
    r"|site ke bina|platform ke bina|senza la piattaforma)"
)
_NO_FEE: Final = factor_alternation(
    r"(?:sin (?:la )?comisión|sin comision|nos ahorramos la comisión|sem (?:a )?taxa"
    r"|sans (?:les )?frais|sans commission|évite(?:r|ons)? les frais|ohne (?:die )?gebühr"
    r"|spart gebühren|senza commissione|commission (?:mat do|bachega|bachegi)|commission mat"
    r"|fees kyun|без комиссии|tanpa biaya|komisyonsuz|without (?:the |any |paying the )?(?:fee|fees"
    r"|commission|cut|platform)"
    # "no fees" alone is often a fact ("no fees were mentioned"); an offer says on what terms.
    r"|no (?:platform |service )?fees? (?:if|when|for (?:either|both|us|you|me)|this way|that way"
    r"|outside|off)|cheaper (?:for both|if we)|around the (?:site|platform)"
    r"|off the books|skip the platform|without the middleman|cut (?:out )?the middle ?man"
    r"|taking (?:a |their )?(?:cut|\d+ ?%)|fee[- ]free|keep (?:this|it) between us)"
)
_DIRECT: Final = factor_alternation(
    r"(?:directo|directamente|direto|diretamente|en direct|directement|direkt|direttamente"
    r"|direct (?:deal|payment|kaam)|sidha|seedha|напрямую|langsung|doğrudan)"
)
# As a trie (moderation.keywords.trie_pattern): the rules try these words at every
# position of their windows. The alternation this replaces listed "continuer" before
# "continue", the longer word first as a trie takes it, so the trie matches exactly the same.
_TALK_WORDS: Final = (
    "hablemos", "hablamos", "hablar", "seguimos", "trabajemos", "trabajamos", "lo hacemos",
    "conversar", "falar", "fechamos", "fechar", "fazer", "on continue", "continuer",
    "parler", "on passe", "reden", "weiterreden", "machen", "klären", "abrechnen",
    "parliamo", "sentirci", "lavorare", "baat", "kaam", "deal", "rabta", "общаться",
    "говорить", "bicara", "konuşalim", "continue", "talk", "work", "chat", "pay", "settle",
    "sort",
)  # fmt: skip
_TALK: Final = f"(?:{trie_pattern(_TALK_WORDS)})"

# Meeting IDs are 9 to 13 digits in groups of three or four; a passcode may follow.
_MEETING_ID: Final = r"\d{3,4}[ -]?\d{3,4}[ -]?\d{3,4}(?:[ -]?\d{3,4})?"
_PASSCODE: Final = (
    r"(?:[^.!?\n]{0,20}?\b(?:passcode|password|pass|pwd|pw|code|código|codigo|senha"
    r"|contraseña|contrasena|kenncode|mot de passe|code secret|pin)\b[:\s]{0,3}[a-z0-9]{2,12})"
)
# A domain name as people type it: "marta-design.com", "https://www.x.co.uk". The first
# label is possessive: a dot must follow it, and giving back its characters only fails
# again once per character.
# The host is checked against the public-suffix list (moderation.domains) after a match.
_DOMAIN: Final = (
    r"(?<![a-z0-9.-])(?:https?://)?(?:www\.)?(?P<domain>[a-z0-9-]{2,63}+(?:\.[a-z]{2,24}){1,2})\b"
)
_MESSENGER_VERBS: Final = (
    "escríbeme", "escribeme", "agrégame", "agregame", "mándame", "mandame", "háblame",
    "hablame", "llámame", "me chama", "me adiciona", "me add", "fala comigo", "chama no",
    "écris-moi", "ecris-moi", "ajoute-moi", "contacte-moi", "schreib mir", "schreibt mir",
    "adde mich", "scrivimi", "aggiungimi", "karo", "kar do", "pe aa jao", "pe aao", "pe msg",
    "pe message", "напиши", "пиши", "добавь", "hubungi", "chat aku", "yaz bana", "加我",
    "联系我",
)  # fmt: skip
# The first letters of every spelling _MESSENGERS accepts.
_MESSENGER_STARTS: Final = (
    "what", "wats", "wtp", "wtsp", "wsp", "zap", "wa", "tele", "tg", "skype", "signal",
    "wechat", "we chat", "weixin", "viber", "discord", "insta", "ig", "snap", "line", "kakao",
    "katalk", "ka talk", "facebook", "messenger", "threema", "imo", "botim", "вотсап",
    "ватсап", "телеграм", "телеге", "вайбер", "微信", "カカオトーク", "ライン", "카톡",
    "카카오톡", "라인",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: InvitationKind
    pattern: re.Pattern[str]
    # Every match contains one of these; the rule runs only from ``before`` characters
    # ahead of one to ``after`` characters past it, wider than any match can reach.
    keywords: Keywords
    before: int
    after: int

    @property
    def names_a_site(self) -> bool:
        """Whether the rule's matches hold a host name, in the group "domain"."""
        return "domain" in self.pattern.groupindex


_RULES: Final[dict[str, _Rule]] = {
    # "pásame tu número", "gib mir deine Nummer", "apna number bhejo", "дай свой номер"
    "request": _Rule(
        "off_platform_request",
        re.compile(
            rf"\b{_GIVE}\b[^.!?\n]{{0,12}}?\b{_YOUR}\b[^.!?\n]{{0,12}}?\b{_CONTACT_NOUNS}\b"
            rf"|\b{_YOUR} (?:personal |private |perso )?{_CONTACT_NOUNS}\b[^.!?\n]{{0,15}}?"
            rf"\b(?:{_GIVE}|share|send|do|de|dein|bhejo|bhej|bhejein|dijiye|share karo)\b"
            rf"|\b{_CONTACT_NOUNS} (?:do|de|bhejo|dijiye|share karo) {_YOUR}\b"
            rf"|\b(?:minta|bisa minta) (?:nomor|no|kontak)\b"
            rf"|\bnumarani (?:verir|alabilir)\b"
        ),
        Keywords(
            words=(
                "tu",
                "tus",
                "teu",
                "tua",
                "seu",
                "sua",
                "ton",
                "ta",
                "tes",
                "votre",
                "vos",
                "deine",
                "deinen",
                "dein",
                "ihre",
                "tuo",
                "apna",
                "apni",
                "apne",
                "aapka",
                "aapna",
                "свой",
                "свою",
                "твой",
                "твою",
                "ваш",
                "kamu",
                "numarani",
                "numaran",
                "minta",
            )
        ),
        before=60,
        after=110,
    ),
    # "hablemos fuera de aquí", "sem taxa se for por fora", "platform ke bahar deal"
    "outside": _Rule(
        "off_platform_request",
        re.compile(
            rf"\b{_TALK}\b[^.!?\n]{{0,30}}?\b{_OUTSIDE}"
            rf"|\b{_OUTSIDE}\b[^.!?\n]{{0,30}}?\b{_TALK}\b"
            rf"|\b{_NO_FEE}\b|\b{_DIRECT}\b[^.!?\n]{{0,40}}?\b(?:{_NO_FEE}|comisión|comision"
            rf"|taxa|frais|commission|gebühr|plattform|plataforma|plateforme|fee|fees)\b"
            rf"|\b(?:go|move|switch) (?:to )?another (?:app|platform|site)\b"
            rf"|\bsettle (?:it |this )?outside\b|\bsomewhere (?:more )?private\b"
            rf"|\b(?:without|not go through|not through) (?:the )?(?:site|platform)\b"
            rf"|\bsorted this out ourselves\b|\bnot keep chatting here\b"
        ),
        Keywords(
            anywhere=(
                # _OUTSIDE
                "fuera",
                "fora",
                "dehors",
                "ailleurs",
                "hors plateforme",
                "außerhalb",
                "ausserhalb",
                "woanders",
                "fuori",
                "altrove",
                "bahar",
                "baahar",
                "вне платформы",
                "напрямую",
                "за пределами",
                "di luar",
                "dişarida",
                "otro lado",
                "sin la plataforma",
                "sem a plataforma",
                "ohne",
                "sans la plateforme",
                "ke bina",
                "senza la piattaforma",
                # _NO_FEE
                "comisi",
                "taxa",
                "frais",
                "commission",
                "gebühr",
                "fee",
                "комисси",
                "tanpa",
                "komisyon",
                "without",
                "cheaper",
                "around the",
                "off the books",
                "skip the",
                "middle",
                "taking",
                "between us",
                # _DIRECT
                "direct",
                "direkt",
                "diret",
                "sidha",
                "seedha",
                "langsung",
                "doğrudan",
                # the English branches
                "another",
                "outside",
                "somewhere",
                "through",
                "ourselves",
                "chatting here",
            )
        ),
        before=110,
        after=130,
    ),
    # "me chama no zap", "schreib mir bei WhatsApp", "agrégame al whatsapp"
    "messenger_verb": _Rule(
        "messenger",
        re.compile(
            r"\b(?:escríbeme|escribeme|agrégame|agregame|mándame|mandame|háblame|hablame"
            r"|llámame|me chama|me adiciona|me add|fala comigo|chama no|écris-moi|ecris-moi"
            r"|ajoute-moi|contacte-moi|schreib mir|schreibt mir|adde mich|scrivimi|aggiungimi"
            r"|karo|kar do|pe aa jao|pe aao|pe msg|pe message|напиши(?: мне)?|пиши|добавь"
            r"|hubungi|chat aku|yaz bana|加我|联系我)\b"
            rf"[^.!?\n]{{0,20}}?{_MESSENGERS}"
        ),
        Keywords(anywhere=_MESSENGER_VERBS),
        before=5,
        after=60,
    ),
    # "whatsapp pe msg karo", "insta pe aa jao"
    "messenger_hindi": _Rule(
        "messenger",
        re.compile(
            rf"(?<![a-z0-9])(?:{_MESSENGERS}\s?(?:pe|par)\s(?:msg|message|baat|aa|call|rabta)"
            rf"|{_MESSENGERS} (?:karo|kar do|me)\b)"
        ),
        Keywords(word_starts=_MESSENGER_STARTS),
        before=0,
        after=45,
    ),
    # "kakao: minji_k", "微信号:wx_lin2021", "카카오톡 ID: jisoo_art", "line id は x"
    "messenger_handle": _Rule(
        "messenger",
        re.compile(
            rf"(?<![a-z]){_MESSENGERS}(?: ?(?:id|アイディ|아이디|号|username|user ?name|handle))?"
            r"\s{0,2}(?::|は|=)\s{0,3}@?[a-z0-9][a-z0-9_.-]{2,40}"
            r"|\bid ?(?:は|:)\s{0,2}[a-z0-9][a-z0-9_.-]{2,40}"
            r"|(?:微信|微信号|카톡|카카오톡|カカオトーク|ライン|line)\S{0,6}"
            r"(?:やり取り|連絡|연락|加|添加|でお願い|で話)"
        ),
        Keywords(
            anywhere=("やり取り", "連絡", "연락", "加", "でお願い", "で話"),
            word_starts=_MESSENGER_STARTS,
            words=("id",),
        ),
        before=20,
        after=80,
    ),
    # Discord tags: "pixelfox#4821", "discord username is m4rco.dev"
    "discord": _Rule(
        "messenger",
        re.compile(
            r"(?<![a-z0-9_.#])[a-z0-9_.]{2,32}#[0-9]{4}(?![0-9])"
            r"|\bdiscord (?:username|user|name|handle|id|tag)? ?(?:is|:)\s{0,2}@?[a-z0-9_.]{2,32}"
            r"|\b(?:on|at) discord\b[^.!?\n]{0,5}[-—:]{1,5}\s{0,2}[a-z0-9_.]{3,32}"
        ),
        Keywords(anywhere=("#", "discord")),
        before=40,
        after=80,
    ),
    # A personal website offered for contact, booking or payment: "my site ... x.com"
    "own_site": _Rule(
        "link",
        re.compile(
            r"\b(?:my|mi|meu|mon|ma|mein|meine|mera|meri|il mio)"
            r" (?:own |personal |personal |propio |próprio )?(?:site|website|web|página|pagina"
            r"|page|seite|webseite|homepage|store|shop|loja|tienda|boutique|portfolio)\b"
            rf"[^!?\n]{{0,60}}?{_DOMAIN}"
        ),
        Keywords(
            anywhere=(
                "site",
                "web",
                "página",
                "pagina",
                "page",
                "seite",
                "store",
                "shop",
                "loja",
                "tienda",
                "boutique",
                "portfolio",
            )
        ),
        before=25,
        after=200,
    ),
    # "x.com, hire me there directly"
    "site_then_contact": _Rule(
        "link",
        re.compile(
            rf"{_DOMAIN}[^!?\n]{{0,40}}?\b(?:order there|hire me|book|reserve|contact me"
            r"|write me|pay me|cheaper|directly|direct|direkt|directamente|diretamente)\b"
        ),
        Keywords(
            anywhere=(
                "order there",
                "hire me",
                "book",
                "reserve",
                "contact me",
                "write me",
                "pay me",
                "cheaper",
                "direct",
                "direkt",
                "diret",
            )
        ),
        before=170,
        after=15,
    ),
    # "book a session at www.x.com"
    "book_at_site": _Rule(
        "link",
        re.compile(
            r"\b(?:book|reserve|hire me|contrátame|contratame|me contrata|reserva|agenda|termine?"
            r"|rendez-vous|rdv|buch)\b[^!?\n]{0,50}?(?<![a-z0-9.-])(?:https?://)?(?:www\.)"
            r"(?P<domain>[a-z0-9-]{2,63}+(?:\.[a-z]{2,24}){1,2})\b"
        ),
        Keywords(anywhere=("www.",)),
        before=75,
        after=120,
    ),
    "tip_jar": _Rule(
        "link",
        re.compile(
            r"\b(?:buymeacoffee|ko-fi|patreon|gumroad|linktr|bit|tinyurl|beacons|carrd)"
            r"\.[a-z]{2,5}/[a-z0-9_.-]{2,60}"
        ),
        Keywords(
            anywhere=(
                "buymeacoffee",
                "ko-fi",
                "patreon",
                "gumroad",
                "linktr",
                "bit.",
                "tinyurl",
                "beacons",
                "carrd",
            )
        ),
        before=0,
        after=80,
    ),
    # Meeting IDs: "zoom id 845 2291 0037, passcode 661244", "Meeting-ID: 864 2210 9933"
    "meeting": _Rule(
        "meeting",
        re.compile(
            r"\b(?:meeting|zoom|teams|webex|reunión|reunion|reunião|réunion|room|sala|raum)"
            r"[- ]?(?:meeting[- ]?)?(?:id|number|no\.?|code|número|numero|numéro|nummer)?"
            rf"\b[^.!?\n0-9]{{0,14}}{_MEETING_ID}{_PASSCODE}?"
            rf"|\b(?:id|número|numero|numéro)\b[^.!?\n0-9]{{0,14}}{_MEETING_ID}{_PASSCODE}"
            r"|\b(?:meet|google meet|meet code|meeting code)\b[^.!?\n]{0,12}"
            r"\b[a-z]{3}-[a-z]{4}-[a-z]{3}\b"
            r"|\bmeet\.jit\.si/[a-z0-9_-]{3,60}"
        ),
        Keywords(
            anywhere=(
                "meet",
                "zoom",
                "teams",
                "webex",
                "reuni",
                "réunion",
                "room",
                "sala",
                "raum",
                "número",
                "numero",
                "numéro",
            ),
            words=("id",),
        ),
        before=12,  # "google meet" starts seven characters before its keyword
        after=170,
    ),
}

# "I can't share my number", "no puedo darte mi número", "ich gebe meine Nummer nicht".
_REFUSAL: Final = re.compile(
    r"\b(?:can'?t|cannot|can not|won'?t|will not|don'?t|do not|never|not allowed|no need"
    r"|please don'?t|rather not|prefer to keep|keep (?:all|everything|talking|it) (?:here|on|in)"
    r"|not (?:going|able) to|against the rules|no puedo|no comparto|não posso|nao posso"
    r"|je ne peux pas|je ne donne pas|kann ich (?:leider )?nicht|gebe (?:\w+ ){0,3}nicht"
    r"|nicht weiter|nahi de sakta|nahi kar sakta|nahin|mat maango|non posso)\b"
)


# The normaliser maps Cyrillic look-alikes to Latin ("номер" reads "hoмep"), so the
# Russian words of the rules and their keywords are read through the same table.
def _read(rule: _Rule) -> _Rule:
    def words(literals: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(literal.translate(CHARACTER_TABLE) for literal in literals)

    keywords = Keywords(
        words(rule.keywords.anywhere), words(rule.keywords.word_starts), words(rule.keywords.words)
    )
    pattern = compile_guarded(rule.pattern.pattern.translate(CHARACTER_TABLE))
    return _Rule(rule.kind, pattern, keywords, rule.before, rule.after)


_RULES_READ: Final = {f"invitation.{name}": _read(rule) for name, rule in _RULES.items()}
_REFUSAL_READ: Final = compile_guarded(_REFUSAL.pattern.translate(CHARACTER_TABLE))
# The keywords of every rule, for the detector's one scan of the message.
KEYWORDS: Final = {name: rule.keywords for name, rule in _RULES_READ.items()}


def find_invitations(
    normalised: str, keywords_found: Mapping[str, list[Span]]
) -> Iterator[tuple[InvitationKind, int, int]]:
    """Invitations in ``normalised``; ``keywords_found`` is the scan of :data:`KEYWORDS`."""
    length = len(normalised)
    for name, rule in _RULES_READ.items():
        spans = keywords_found.get(name)
        if not spans:
            continue
        for low, high in windows(spans, length, rule.before, rule.after):
            for match in rule.pattern.finditer(normalised, low, high):
                if rule.names_a_site and not is_domain(match.group("domain")):
                    continue  # "my portfolio is in config.yaml": not a public suffix
                yield rule.kind, match.start(), match.end()


# How far around a hit a refusal is looked for: bounded, so that a message of many hits
# and no punctuation costs linear time, not one scan of the whole message per hit.
REFUSAL_BEFORE: Final = 80
REFUSAL_AFTER: Final = 40
# Every refusal _REFUSAL accepts holds one of these.
REFUSAL_KEYWORDS: Final = Keywords(
    anywhere=tuple(
        keyword.translate(CHARACTER_TABLE)
        for keyword in (
            "can", "won", "will not", "don", "do not", "never", "not ", "no need", "rather not",
            "keep", "against the rules", "no puedo", "no comparto", "posso", "je ne",
            "kann ich", "gebe", "nicht", "nahi", "mat maango",
        )
    )
)  # fmt: skip
_SENTENCE_END: Final = re.compile(r"[.!?\n]")


def is_refusal(normalised: str, start: int, end: int) -> bool:
    """Whether the sentence holding [start, end) refuses rather than offers."""
    window_start = max(0, start - REFUSAL_BEFORE)
    before = normalised[window_start:start]
    low = window_start + max(before.rfind(mark) for mark in ".!?\n") + 1
    high = min(len(normalised), end + REFUSAL_AFTER)
    if (stop := _SENTENCE_END.search(normalised, end, high)) is not None:
        high = stop.start()
    return _REFUSAL_READ.search(normalised, low, high) is not None
