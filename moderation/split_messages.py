"""Contact details split across consecutive messages of one sender.

"my number starts with 646" then "555 0192 is the rest": neither message alone holds a
phone number, the two together do. The caller (the service that stores messages) hands
over the sender's recent messages in the same thread, oldest first, and the new one; the
message that completes a detail is the one flagged, and the answer names the earlier
messages it joins so a reviewer can read them together.

Pure: no I/O, no clock. Which messages count as "recent" (same sender, same thread,
within a few minutes) is the caller's query; this module bounds how many it reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from moderation.contact_details import ContactDetailsKind, find_contact_details

# At most this many earlier messages join the new one: a detail is given in two or three
# pieces, and each extra message is one more detector pass on a longer text.
MAX_JOINED_MESSAGES: Final = 4
# Only the tail of a long earlier message can hold the start of a detail.
_EARLIER_TAIL_CHARS: Final = 200
_JOINER: Final = " "


@dataclass(frozen=True, slots=True)
class EarlierMessage:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class SplitContactDetails:
    kind: ContactDetailsKind
    # The earlier messages the detail runs through, oldest first.
    joins: tuple[str, ...]


def find_split_contact_details(
    earlier: Sequence[EarlierMessage], text: str
) -> SplitContactDetails | None:
    """The contact detail that ``text`` completes with the end of ``earlier``, if any.

    ``earlier`` is the sender's recent messages in the thread, oldest first. A detail
    found in one earlier message alone does not count: that message was judged (and
    flagged) when it was posted.
    """
    if not text.strip():
        return None
    recent = list(earlier)[-MAX_JOINED_MESSAGES:]
    for count in range(1, len(recent) + 1):
        joined_messages = recent[-count:]
        pieces: list[str] = []
        bounds: list[tuple[int, int, str]] = []  # (start, end, id) in the joined text
        cursor = 0
        for message in joined_messages:
            tail = message.text[-_EARLIER_TAIL_CHARS:]
            pieces.append(tail)
            bounds.append((cursor, cursor + len(tail), message.id))
            cursor += len(tail) + len(_JOINER)
        new_start = cursor
        joined = _JOINER.join([*pieces, text])
        earlier_alone = find_contact_details(joined[: max(0, new_start - len(_JOINER))])
        for hit in find_contact_details(joined):
            if hit.start >= new_start or hit.end <= new_start:
                continue  # wholly in the new message, or wholly in the earlier ones
            if not _ADDS_DETAIL.search(joined, new_start, hit.end) and any(
                found.kind == hit.kind and found.start < hit.end and hit.start < found.end
                for found in earlier_alone
            ):
                # The earlier messages already hold this detail, and the new one only
                # lends it a word ("call me" + "Bob").
                continue
            joins = tuple(
                message_id
                for start, end, message_id in bounds
                if hit.start < end and start < hit.end
            )
            if joins:
                return SplitContactDetails(hit.kind, joins)
    return _handle_after_invitation(recent, text)


# What the new message must bring to a detail the earlier ones already hold for it to
# complete something: a digit, an "@" or a dot ("zoom id 845 2291 0037" + "passcode 6612").
_ADDS_DETAIL: Final = re.compile(r"[0-9@.]")
# A message that is only a handle, a tag or an address: "@marta_ux", "marta_ux",
# "pixelfox#4821", "live:sam.otter". Plain words ("thanks", "ok") do not count: a bare
# handle without "@" needs a digit, "_" or "." in it.
_BARE_HANDLE: Final = re.compile(
    r"\s*(?:@[\w.]{2,32}|live:[\w.:-]{2,40}|[\w.]{2,32}#\d{4}"
    r"|(?=[\w.]{0,31}[\d_.])[^\W\d][\w.]{2,31})\s*[.!]?\s*"
)
# Kinds of a hit that invites a handle to follow ("add me on telegram", "my insta is").
_INVITING_KINDS: Final = frozenset(("messenger", "off_platform_request"))
# How close to the end of the earlier message the invitation must be.
_INVITATION_TAIL_CHARS: Final = 40


def _handle_after_invitation(
    recent: Sequence[EarlierMessage], text: str
) -> SplitContactDetails | None:
    """ "add me on telegram" then "@marta_ux": the handle completes the invitation."""
    if not recent or _BARE_HANDLE.fullmatch(text) is None:
        return None
    previous = recent[-1]
    tail_start = max(0, len(previous.text) - _INVITATION_TAIL_CHARS)
    for hit in find_contact_details(previous.text):
        if hit.kind in _INVITING_KINDS and hit.end >= tail_start:
            return SplitContactDetails("messenger", (previous.id,))
    return None
