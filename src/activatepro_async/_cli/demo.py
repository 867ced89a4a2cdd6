"""``activatepro demo``: fake users, imported into the emulator running in this process.

Faker is slow per call (tens of microseconds for a name, and a profile has
several fields): 100,000 users straight from Faker took longer than the whole
import. So Faker, seeded, builds small pools of names per locale once, and the
users are drawn from the pools with one ``random.Random``: the same seed gives
the same users, at about a microsecond per field.

A share of the users is invalid on purpose, one kind of mistake each, so the
summary shows the API's reasons: a malformed email, a date that does not
exist, a phone number not in E.164, a business unit with spaces, an attribute
the account does not know, a missing email (refused before sending), and an
email already taken in the business unit (accepted, then failed when
processed).
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Iterator
from typing import Any

import attrs

from .._wire import date_to_wire, micros_to_wire
from .readers import SourceRow

__all__ = ["INVALID_KINDS", "DemoSource", "generate_users"]

#: Business units of the demo and the Faker locale of each.
BUSINESS_UNITS = {"DE": "de_DE", "UK": "en_GB", "FR": "fr_FR", "NL": "nl_NL", "US": "en_US"}
_DIALING = {"DE": "+49", "UK": "+44", "FR": "+33", "NL": "+31", "US": "+1"}
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "shop.example")
#: The deliberate mistakes, one per invalid user, in turn.
INVALID_KINDS = (
    "email",
    "birthday",
    "phone",
    "business_unit",
    "unknown_attribute",
    "missing_email",
    "duplicate_email",
)
_POOL = 300
_BIRTH_FIRST = dt.date(1945, 1, 1).toordinal()
_BIRTH_LAST = dt.date(2008, 12, 31).toordinal()
_CREATED_FIRST = int(dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc).timestamp())
_CREATED_LAST = int(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp())


def _ascii(text: str) -> str:
    """A name as an email local part holds it: ``Müller-Lüdenscheidt``: ``muller-ludenscheidt``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum() or c == "-") or "user"


@attrs.frozen
class _Pool:
    # (name, the name as an email holds it), computed once per name.
    female: tuple[tuple[str, str], ...]
    male: tuple[tuple[str, str], ...]
    last: tuple[tuple[str, str], ...]


def _pools(seed: int) -> dict[str, _Pool]:
    from faker import Faker

    def pool(names: set[str]) -> tuple[tuple[str, str], ...]:
        # Sets drop duplicates in an order that varies between processes: sort.
        return tuple((name, _ascii(name)) for name in sorted(names))

    pools = {}
    for bu, locale in BUSINESS_UNITS.items():
        fake = Faker(locale)
        fake.seed_instance(seed)
        pools[bu] = _Pool(
            female=pool({fake.first_name_female() for _ in range(_POOL)}),
            male=pool({fake.first_name_male() for _ in range(_POOL)}),
            last=pool({fake.last_name() for _ in range(_POOL)}),
        )
    return pools


def generate_users(
    count: int, *, seed: int = 7, invalid_share: float = 0.015
) -> Iterator[dict[str, Any]]:
    """``count`` realistic users in wire form; about ``invalid_share`` of them invalid.

    >>> next(generate_users(1))["email"]
    'destiny.rojas.0@example.com'
    """
    pools = _pools(seed)
    rng = random.Random(seed)  # noqa: S311 - fake data, not secrets
    # Dates as strings, made once: formatting one per user costs more than the rest.
    birthdays = [
        date_to_wire(dt.date.fromordinal(day)) for day in range(_BIRTH_FIRST, _BIRTH_LAST + 1)
    ]
    created = [
        micros_to_wire(rng.randrange(_CREATED_FIRST, _CREATED_LAST) * 1_000_000)
        for _ in range(4096)
    ]
    bus = tuple(BUSINESS_UNITS)
    every = max(1, round(1 / invalid_share)) if invalid_share > 0 else 0
    last_email: dict[str, str] = {}
    invalid = 0
    randrange, random_ = rng.randrange, rng.random
    for i in range(count):
        bu = bus[randrange(len(bus))]
        pool = pools[bu]
        if random_() < 0.5:
            names, gender = pool.female, "female"
        else:
            names, gender = pool.male, "male"
        first, first_ascii = names[randrange(len(names))]
        last, last_ascii = pool.last[randrange(len(pool.last))]
        email = f"{first_ascii}.{last_ascii}.{i}@{_DOMAINS[i % len(_DOMAINS)]}"
        user: dict[str, Any] = {
            "id": f"user-{i:07d}",
            "email": email,
            "businessUnit": bu,
            "firstName": first,
            "lastName": last,
            "gender": gender,
            "birthday": birthdays[randrange(len(birthdays))],
            "createdAt": created[i & 4095],
            "phone": f"{_DIALING[bu]}{randrange(10**8, 10**10)}",
        }
        if every and i % every == every - 1:
            _spoil(user, INVALID_KINDS[invalid % len(INVALID_KINDS)], last_email.get(bu))
            invalid += 1
        else:
            last_email[bu] = email
        yield user


def _spoil(user: dict[str, Any], kind: str, taken: str | None) -> None:
    if kind == "email":
        user["email"] = user["email"].replace("@", ".at.")
    elif kind == "birthday":
        user["birthday"] = user["birthday"][:5] + "02-30"
    elif kind == "phone":
        user["phone"] = "0" + user["phone"][3:6] + " " + user["phone"][6:]
    elif kind == "business_unit":
        user["businessUnit"] = "Sales Team " + user["businessUnit"]
    elif kind == "unknown_attribute":
        user["favouriteColour"] = "teal"
    elif kind == "missing_email":
        del user["email"]
    elif kind == "duplicate_email" and taken is not None:
        user["email"] = taken


class DemoSource:
    """The generated users as a row source for the import run (line = user number)."""

    def __init__(self, count: int, *, seed: int = 7, invalid_share: float = 0.015) -> None:
        self.name = f"{count:,} generated users"
        self.count = count
        self.total_bytes: int | None = count
        self.bytes_read = 0
        self._users = generate_users(count, seed=seed, invalid_share=invalid_share)

    def __iter__(self) -> Iterator[SourceRow]:
        for number, user in enumerate(self._users, 1):
            self.bytes_read = number
            yield SourceRow(number, user, user, None)

    def raw_row(self, row: SourceRow) -> Any:
        """The generated user, as it was."""
        return row.raw
