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
        for hit in find_contact_details(joined):
            if hit.start >= new_start or hit.end <= new_start:
                continue  # wholly in the new message, or wholly in the earlier ones
            joins = tuple(
                message_id
                for start, end, message_id in bounds
                if hit.start < end and start < hit.end
            )
            if joins and not _found_in_earlier_alone(joined_messages, joins):
                return SplitContactDetails(hit.kind, joins)
    return None


def _found_in_earlier_alone(messages: Sequence[EarlierMessage], joins: tuple[str, ...]) -> bool:
    """A joined detail that the earlier messages already hold without the new one."""
    earlier_text = _JOINER.join(m.text[-_EARLIER_TAIL_CHARS:] for m in messages if m.id in joins)
    return bool(find_contact_details(earlier_text)) and len(joins) == 1
