"""The rows of the DVD-rental sample: one logical data set, generated deterministically.

`generate(kind, scale)` returns, per table in load order, its columns and rows. Values are
logical (Decimal, datetime, tuple for a SET, `Point`, JSON as text); `_sql.adapt` spells them
for each driver. Only what a dialect cannot hold differs: zero dates exist on MariaDB only, and
SQLite has no geometry column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.migration.samples._sql import Point

MAX_SCALE = 60  # payment_id is SMALLINT UNSIGNED (65535) and there are 1000 payments per scale

LAST_UPDATE = datetime(2006, 2, 15, 4, 34, 33)
FIRST_RENTAL = datetime(2005, 5, 24, 22, 53, 30)
ZERO_DATETIME = "0000-00-00 00:00:00"
BIG_RENTAL_ID = 4_000_000_000  # above INT's 2**31 - 1, inside INT UNSIGNED
ALL_BYTES = bytes(range(256))

RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes")
LANGUAGES = ("English", "Italian", "Japanese", "Mandarin", "French", "German")
CATEGORIES = ("Action", "Animation", "Children", "Classics", "Comedy", "Documentary", "Drama",
              "Family", "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi", "Sports",
              "Travel")
COUNTRIES = ("Afghanistan", "Algeria", "Argentina", "Brazil", "Canada", "Côte d’Ivoire",
             "España", "France", "Japan", "México", "Nigeria", "Réunion", "Russian Federation",
             "Saudi Arabia", "Taiwan", "Türkiye", "United Kingdom", "United States", "Viet Nam",
             "Yemen")
CITIES = ("A Corua (La Corua)", "Abha", "Abu Dhabi", "Acua", "Adana", "Addis Abeba", "Aden",
          "Adoni", "Ahmadnagar", "Akishima", "Akron", "al-Ayn", "Šiauliai", "São Paulo",
          "Zürich", "Kraków", "Ōsaka", "Québec", "Reykjavík", "Tórshavn")
DISTRICTS = ("Alberta", "QLD", "Nagasaki", "Île-de-France", "Québec", "Hokkaido", "Texas",
             "Buenos Aires", "", "Baden-Württemberg")
FIRST = ("PENELOPE", "NICK", "ED", "JENNIFER", "JOHNNY", "BETTE", "GRACE", "MATTHEW", "JOE",
         "CHRISTIAN", "ZERO", "KARL", "UMA", "VIVIEN", "CUBA", "FRED", "HELEN", "DAN", "BOB",
         "LUCILLE", "RENÉE", "ZOË", "JOSÉ", "O'NEIL")
LAST = ("GUINESS", "WAHLBERG", "CHASE", "DAVIS", "LOLLOBRIGIDA", "NICHOLSON", "MOSTEL",
        "JOHANSSON", "SWANK", "GABLE", "CAGE", "BERRY", "WOOD", "BERGEN", "OLIVIER", "COSTNER",
        "VOIGHT", "TORN", "FAWCETT", "TRACY", "MÜLLER", "D'ANGELO", "O'BRIEN", "NÚÑEZ")
ADJECTIVES = ("ACADEMY", "ACE", "ADAPTATION", "AFFAIR", "AFRICAN", "AGENT", "AIRPLANE",
              "ALABAMA", "ALADDIN", "ALAMO", "ALASKA", "ALI", "ALIEN", "ALLEY", "ALONE",
              "AMADEUS", "AMELIE", "AMERICAN", "AMISTAD", "ANACONDA")
NOUNS = ("DINOSAUR", "GOLDFINGER", "HOLES", "PREJUDICE", "EGG", "TRUMAN", "SIERRA", "PHANTOM",
         "LOUISIANA", "HOLIDAY", "FANTASIA", "SUNDANCE", "RUNNER", "HOBBIT", "FORRESTER",
         "CONFESSIONS", "BOONDOCK", "ATLANTIS", "LAMBS", "CREATURES", "WEST", "WARS", "MASK",
         "GRAFFITI", "RAIDERS")
PREFERENCES = (None, "null", '{"newsletter": true, "genres": ["Comedy", "Drama"]}', "[]",
               '{"language": "français", "note": "日本語 😀", "n": 1.5}', "{}")
AMOUNTS = tuple(Decimal(a) for a in ("0.99", "2.99", "4.99", "5.99", "0.00", "11.99"))


@dataclass(frozen=True)
class TableRows:
    """The rows of one table, positional in `columns` order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Sizes:
    """How many rows each scaled table gets."""

    countries: int
    actors: int
    films: int
    customers: int

    @property
    def cities(self) -> int:
        return 3 * self.countries

    @property
    def addresses(self) -> int:
        return 5 + self.customers + 5  # stores, staff, customers, 5 unused

    @property
    def inventory(self) -> int:
        return 4 * self.films

    @property
    def rentals(self) -> int:
        return 10 * self.films


def sizes(scale: int) -> Sizes:
    if not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be between 1 and {MAX_SCALE}, not {scale}")
    return Sizes(countries=20 * scale, actors=50 * scale, films=100 * scale,
                 customers=60 * scale)


def stamp(n: int) -> datetime:
    """A deterministic last_update: the Sakila load time plus n seconds."""
    return LAST_UPDATE + timedelta(seconds=n)


def generate(kind: str, scale: int = 1) -> dict[str, TableRows]:
    """Every table's rows, in an order that loads with foreign keys checked once at the end
    (film_text is filled by the ins_film trigger, not here)."""
    size = sizes(scale)
    geometry = kind != "sqlite"
    return {
        "language": TableRows(("language_id", "name", "last_update"),
                              [(i, n, LAST_UPDATE) for i, n in enumerate(LANGUAGES, 1)]),
        "category": TableRows(("category_id", "name", "last_update"),
                              [(i, n, LAST_UPDATE) for i, n in enumerate(CATEGORIES, 1)]),
        "country": TableRows(("country_id", "country", "last_update"), countries(size)),
        "city": TableRows(("city_id", "city", "country_id", "last_update"), cities(size)),
        "address": addresses(size, geometry),
        "actor": TableRows(("actor_id", "first_name", "last_name", "last_update"),
                           actors(size)),
        "film": films(size),
        "film_actor": TableRows(("actor_id", "film_id", "last_update"), film_actors(size)),
        "film_category": TableRows(("film_id", "category_id", "last_update"),
                                   [(f, (f * 7) % len(CATEGORIES) + 1, stamp(f))
                                    for f in range(1, size.films + 1)]),
        "store": TableRows(("store_id", "manager_staff_id", "address_id", "last_update"),
                           [(1, 1, 1, LAST_UPDATE), (2, 2, 2, LAST_UPDATE)]),
        "staff": staff(),
        "customer": customers(size, zero_dates=kind == "mariadb"),
        "inventory": TableRows(("inventory_id", "film_id", "store_id", "last_update"),
                               [(i, (i - 1) // 4 + 1, 1 if i % 4 in (1, 2) else 2, stamp(i))
                                for i in range(1, size.inventory + 1)]),
        "rental": rentals(size, zero_dates=kind == "mariadb"),
        "payment": payments(size),
    }


def countries(size: Sizes) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(1, size.countries + 1):
        name = COUNTRIES[(i - 1) % len(COUNTRIES)]
        if i > len(COUNTRIES):
            name = f"{name} {(i - 1) // len(COUNTRIES)}"
        rows.append((i, name, LAST_UPDATE))
    return rows


def cities(size: Sizes) -> list[tuple[Any, ...]]:
    return [(i, CITIES[(i - 1) % len(CITIES)], (i - 1) // 3 + 1, stamp(i))
            for i in range(1, size.cities + 1)]


def addresses(size: Sizes, geometry: bool) -> TableRows:
    """address2 alternates NULL and '' (both occur in Sakila); some postal codes are NULL."""
    columns = ["address_id", "address", "address2", "district", "city_id", "postal_code",
               "phone"]
    if geometry:
        columns.append("location")
    rows = []
    for i in range(1, size.addresses + 1):
        row: list[Any] = [i, f"{(i * 37) % 1900 + 1} {NOUNS[i % len(NOUNS)].title()} Street",
                          None if i % 2 else "", DISTRICTS[i % len(DISTRICTS)],
                          (i * 11) % size.cities + 1,
                          None if i % 9 == 0 else f"{(i * 7919) % 100000:05d}",
                          "" if i % 13 == 0 else f"{(i * 104729) % 10**12:012d}"]
        if geometry:
            row.append(Point(round(-180 + (i * 37.25) % 360, 4), round(-90 + (i * 13.5) % 180, 4)))
        rows.append((*row, stamp(i)))
    return TableRows((*columns, "last_update"), rows)


def actors(size: Sizes) -> list[tuple[Any, ...]]:
    return [(i, FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)], stamp(i))
            for i in range(1, size.actors + 1)]


def film_title(i: int) -> str:
    combos = len(ADJECTIVES) * len(NOUNS)
    adjective = ADJECTIVES[(i - 1) % len(ADJECTIVES)]
    title = f"{adjective} {NOUNS[((i - 1) // len(ADJECTIVES)) % len(NOUNS)]}"
    return title if i <= combos else f"{title} {(i - 1) // combos + 1}"


def features(i: int) -> tuple[str, ...] | None:
    """A SET value: every subset of FEATURES in turn (the empty set included), NULL every 17th."""
    if i % 17 == 0:
        return None
    mask = i % (1 << len(FEATURES))
    return tuple(f for bit, f in enumerate(FEATURES) if mask & (1 << bit))


def release_year(i: int) -> int | None:
    """Mostly 2006, with YEAR's bounds (1901, 2155) and some NULLs."""
    return {1: 1901, 2: 2155}.get(i, None if i % 23 == 0 else 2006 - i % 3)


def films(size: Sizes) -> TableRows:
    """size.films films plus one more that the build deletes again (film ids then have a gap
    at the end: the AUTO_INCREMENT / sequence is ahead of max(film_id))."""
    rows = []
    for i in range(1, size.films + 2):
        adjective = ADJECTIVES[(i * 3) % len(ADJECTIVES)].lower()
        noun = NOUNS[(i * 5) % len(NOUNS)].lower()
        description = (None if i % 31 == 0 else
                       f"The {adjective} story of a {noun} and a dentist who must outrace a "
                       f"{NOUNS[i % len(NOUNS)].lower()} in Ancient India")
        rows.append((i, film_title(i), description, release_year(i), i % 3 + 1,
                     None if i % 4 else (i % 5) + 2, 3 + i % 5,
                     (Decimal("0.99"), Decimal("2.99"), Decimal("4.99"))[i % 3],
                     None if i % 29 == 0 else 46 + (i * 7) % 140,
                     Decimal("9.99") + Decimal(i % 21), RATINGS[i % len(RATINGS)], features(i),
                     stamp(i)))
    return TableRows(("film_id", "title", "description", "release_year", "language_id",
                      "original_language_id", "rental_duration", "rental_rate", "length",
                      "replacement_cost", "rating", "special_features", "last_update"), rows)


def film_actors(size: Sizes) -> list[tuple[Any, ...]]:
    """Each film gets 1 to 9 distinct actors."""
    rows = []
    for film in range(1, size.films + 1):
        cast = {(film * 17 + k * 31) % size.actors + 1 for k in range(1 + film % 9)}
        rows += [(actor, film, stamp(film)) for actor in sorted(cast)]
    return rows


def password(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def staff() -> TableRows:
    """Three staff: 1 manages store 1 and works there (the row-level cycle) and has a picture
    holding every byte value; 2 manages store 2 and has an empty picture; 3 has none."""
    rows = [
        (1, "Mike", "Hillyer", 3, ALL_BYTES, "Mike.Hillyer@sakilastaff.com", 1, True, "Mike",
         password("mike"), LAST_UPDATE),
        (2, "Jon", "Stephens", 4, b"", "Jon.Stephens@sakilastaff.com", 2, True, "Jon",
         None, LAST_UPDATE),
        (3, "Ana Lucía", "Núñez", 5, None, None, 2, False, "ana", "", LAST_UPDATE),
    ]
    return TableRows(("staff_id", "first_name", "last_name", "address_id", "picture", "email",
                      "store_id", "active", "username", "password", "last_update"), rows)


def customers(size: Sizes, zero_dates: bool) -> TableRows:
    """Customers; on MariaDB every 25th has the zero date as create_date."""
    rows = []
    for i in range(1, size.customers + 1):
        first, last = FIRST[(i * 5) % len(FIRST)], LAST[(i * 3) % len(LAST)]
        email = None if i % 11 == 0 else f"{first}.{last}@sakilacustomer.org".lower()
        created = datetime(2006, 2, 14, 22, 4, 36) + timedelta(hours=i)
        rows.append((i, i % 2 + 1, first, last, email, 5 + i, i % 7 != 0,
                     ZERO_DATETIME if zero_dates and i % 25 == 0 else created,
                     PREFERENCES[i % len(PREFERENCES)], stamp(i)))
    return TableRows(("customer_id", "store_id", "first_name", "last_name", "email",
                      "address_id", "active", "create_date", "preferences", "last_update"),
                     rows)


def rental_id(i: int, size: Sizes) -> int:
    """Rental ids are 1..n-1, then BIG_RENTAL_ID for the last one."""
    return BIG_RENTAL_ID if i == size.rentals else i


def rentals(size: Sizes, zero_dates: bool) -> TableRows:
    """Rentals; every 50th is not returned (NULL), on MariaDB every 97th has the zero date."""
    rows = []
    for i in range(1, size.rentals + 1):
        rented = FIRST_RENTAL + timedelta(minutes=37 * i)
        returned: datetime | str | None = rented + timedelta(days=1 + i % 9, hours=i % 5)
        if i % 50 == 0:
            returned = None
        elif zero_dates and i % 97 == 0:
            returned = ZERO_DATETIME
        rows.append((rental_id(i, size), rented, (i * 7) % size.inventory + 1,
                     (i * 13) % size.customers + 1, returned, i % 2 + 1, stamp(i)))
    return TableRows(("rental_id", "rental_date", "inventory_id", "customer_id", "return_date",
                      "staff_id", "last_update"), rows)


def payments(size: Sizes) -> TableRows:
    """One payment per rental; every 50th (from the 25th) has lost its rental (NULL)."""
    rows = []
    for i in range(1, size.rentals + 1):
        rented = FIRST_RENTAL + timedelta(minutes=37 * i)
        amount = Decimal("999.99") if i == 1 else AMOUNTS[i % len(AMOUNTS)]
        rows.append((i, (i * 13) % size.customers + 1, i % 2 + 1,
                     None if i % 50 == 25 else rental_id(i, size), amount,
                     rented + timedelta(minutes=i % 60), stamp(i)))
    return TableRows(("payment_id", "customer_id", "staff_id", "rental_id", "amount",
                      "payment_date", "last_update"), rows)

