"""Who a line is about: the pure rules of identity (no database; see resolve.py for the store).

Entra ID and the target define identity, not the userName:
- the externalId (Entra's source object, when it is mapped) is durable and never shared;
- the target's SCIM id is durable for the life of the account (a user deleted in the target and
  created again gets a new one: the person keeps both, as history);
- the userName is an attribute: it is renamed and corrected, and two people may hold the same one
  for a while (one of them gets 409 uniqueness).

Names are compared by `name_key`: Unicode NFKC (a no-break space is a space, full-width letters
are letters), case folded, runs of white space made one space, trimmed. Two spellings with one
key are one name, as the target's uniqueness check would have it.
"""
from __future__ import annotations

import unicodedata
from functools import lru_cache

NAME = "n"  # ScimUserAlias.kind of a userName
EXTERNAL = "e"  # ... of an externalId
SCIM = "s"  # ... of the target's SCIM id
KEY_LENGTH = 512
_BY_ID = frozenset({"read", "update", "disable", "enable", "delete"})  # operations that name the id in the path


def says_gone(operation: str, status: int) -> bool:
    """Does an exchange say that the SCIM id in its path no longer exists in the target? A DELETE
    that succeeded, or any request by that id answered 404. Such an id is never a person's current
    one again (a stale id Entra still had cached), and a later new id under the person's name is a
    re-creation, not another account."""
    if operation not in _BY_ID:
        return False
    return status == 404 or (operation == "delete" and 200 <= status < 300)


@lru_cache(maxsize=65_536)
def name_key(user_name: str | None) -> str | None:
    """The comparable form of a userName (None for none or only white space)."""
    if not user_name:
        return None
    if user_name.isascii():
        key = " ".join(user_name.lower().split())
    else:
        key = " ".join(unicodedata.normalize("NFKC", user_name).casefold().split())
    return key[:KEY_LENGTH] or None


def nearest(spans: dict[int, tuple[int, int]], ts_us: int) -> list[int]:
    """The users whose span (first_us, last_us) is nearest `ts_us` (0 inside), nearest first."""
    def distance(item: tuple[int, tuple[int, int]]) -> tuple[int, int]:
        user_id, (first, last) = item
        return (0 if first <= ts_us <= last else min(abs(ts_us - first), abs(ts_us - last)), user_id)

    return [user_id for user_id, _span in sorted(spans.items(), key=distance)]


def visible(text: str) -> str:
    """`text` with the characters a person cannot tell apart shown by their code point: white
    space other than a plain space (a no-break space...), format characters (zero-width joiners,
    marks), so that "ryan smith" and "ryan\u00a0smith" no longer look alike on a page."""
    out = []
    for char in text:
        if char != " " and (char.isspace() or unicodedata.category(char) in ("Cf", "Zs", "Zl", "Zp", "Cc")):
            out.append(f"\u27e8U+{ord(char):04X}\u27e9")
        else:
            out.append(char)
    return "".join(out)


def people_labels(people: list[tuple[str | None, str | None, str | None, int]]) -> list[str]:
    """What to call each of these people in a list, from (userName, externalId, SCIM id, row id):
    their userName, else their externalId, else their SCIM id. Two people who share a name (one of
    them got 409 while it was the other's, or one is spelt in another case) would read as one
    twice: each of them has, after the name, what tells them apart (externalId, else SCIM id,
    else the row's number)."""
    bases = [user_name or external_id or scim_id or f"user {row_id}"
             for user_name, external_id, scim_id, row_id in people]
    keys = [name_key(base) or base for base in bases]
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    labels = []
    for base, key, (user_name, external_id, scim_id, row_id) in zip(bases, keys, people, strict=True):
        if counts[key] < 2:
            labels.append(base)
        elif user_name and external_id:
            labels.append(f"{base} (externalId {external_id})")
        elif (user_name or external_id) and scim_id:
            labels.append(f"{base} (SCIM id {scim_id})")
        else:
            labels.append(f"{base} (#{row_id})")
    return labels
