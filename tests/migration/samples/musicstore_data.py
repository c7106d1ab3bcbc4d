"""The rows of the music-store sample, generated deterministically (no randomness).

Text is deliberately varied: accents, CJK, Hangul, Arabic and Hebrew (right to left), emoji
(outside the BMP: only in the columns MariaDB stores as utf8mb4), tabs, no-break and
zero-width spaces, CRLF, leading and trailing spaces, and '' next to NULL in the same columns.
On SQLite only, the values SQLite accepts and the declared types do not allow: Track.Bytes
holds 3,000,000,000 and a negative number, Employee.Extension (NVARCHAR(5)) a 40-character
string; UnitPrice (NUMERIC(10,2)) holds integers (1, 2) and reals (0.99) on every dialect,
which SQLite stores as two storage classes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.migration.samples.dvdrental_data import TableRows

MAX_SCALE = 400

BIG_BYTES = 3_000_000_000
NEGATIVE_BYTES = -5
LONG_EXTENSION = "x" * 10 + "0123456789" * 3  # 40 characters in an NVARCHAR(5)

ARTISTS = (
    "AC/DC", "Accept", "Aerosmith", "Alanis Morissette", "Antônio Carlos Jobim", "Motörhead",
    "Mötley Crüe", "Björk", "Sigur Rós", "坂本龍一", "宇多田ヒカル", "방탄소년단", "فيروز",
    "עומר אדם", "Beyoncé", "Zé Ramalho", "Antonín Dvořák", "Пётр Чайковский", "🎸 Guitar Heroes",
    "Emoji 😀 Band", "Café Tacvba", "Tab\tSeparated", "No\u00a0Break", "Zero\u200bWidth",
    "Ideographic\u3000Space", "Trailing Space ", " Leading Space", "Line\nBreak",
    "Carriage\r\nReturn", "O'Connor & \"Quotes\"", "Back\\slash", "100% Pure",
)
GENRES = ("Rock", "Jazz", "Metal", "Alternative & Punk", "Rock And Roll", "Blues", "Latin",
          "Reggae", "Pop", "Soundtrack", "Bossa Nova", "Easy Listening", "Heavy Metal",
          "R&B/Soul", "Electronica/Dance", "World", "Hip Hop/Rap", "Science Fiction",
          "TV Shows", "Sci Fi & Fantasy", "Drama", "Comedy", "Alternative", "Classical",
          "Opera")
MEDIA_TYPES = ("MPEG audio file", "Protected AAC audio file", "Protected MPEG-4 video file",
               "Purchased AAC audio file", "AAC audio file")
PLAYLISTS = ("Music", "Movies", "TV Shows", "Audiobooks", "90’s Music", "Audiobooks",
             "Movies", "Music", "Music Videos", "TV Shows", "Brazilian Music", "Classical",
             "Classical 101 - Deep Cuts", "Classical 101 - Next Steps",
             "Classical 101 - The Basics", "Grunge", "Heavy Metal Classic", "On-The-Go 1 🎧")
WORDS = ("For Those About To Rock", "Balls to the Wall", "Restless and Wild", "Let There Be",
         "Big Ones", "Jagged Little Pill", "Facelift", "Warner 25 Anos", "Plays Metallica",
         "Águas de Março", "Garota de Ipanema", "Überall", "Jóga", "Hoppípolla", "戦場のメリー",
         "Fly Me to the Moon", "Señorita", "Ça plane pour moi", "Smells Like Teen Spirit")
COMPOSERS = ("Angus Young, Malcolm Young, Brian Johnson", "", None, "J.S. Bach",
             "Ludwig van Beethoven", "Heitor Villa-Lobos", "坂本龍一", "Жорж Бизе",
             "Tom Jobim / Vinícius de Moraes", "  ", "Steven Tyler\tJoe Perry")
FIRST = ("Luís", "Leonie", "François", "Bjørn", "František", "Helena", "Astrid", "Daan",
         "Kara", "Eduardo", "Alexandre", "Roberto", "Fernanda", "Mark", "Jennifer", "Frank",
         "Jack", "Michelle", "Tim", "Dan", "Kathy", "Heather", "John", "Julia", "Patrick",
         "Edward", "Ellie", "Madalena", "Hannah", "Camille", "Dominique", "Marc", "Wyatt",
         "Isabelle", "Leyla", "Niklas", "Phil", "Hugh", "Stanisław", "Enrique", "Joakim",
         "Emma", "Lucas", "Aarav", "Manoj", "Puja", "Diego", "Luis", "Mónica", "Ladislav",
         "Victor", "Terhi", "Steve", "Martha", "Richard", "Frank", "Johannes", "陳", "佐藤")
LAST = ("Gonçalves", "Köhler", "Tremblay", "Hansen", "Wichterlová", "Holý", "Schneider",
        "Peeters", "Nielsen", "Martins", "Rocha", "Almeida", "Ramos", "Philips", "Peterson",
        "Harris", "Smith", "Brooks", "Goyer", "Miller", "Chase", "Gordon", "Gray", "Barnett",
        "Brown", "Mercier", "Girard", "Lefebvre", "Dubois", "Bernard", "Schröder", "Zimmermann",
        "Murray", "O'Reilly", "Kowalski", "Muñoz", "Lindberg", "Sullivan", "Pareek", "Gupta",
        "Silva", "Rojas", "Hämäläinen", "Nagy", "Taylor", "大文", "花子")
COUNTRIES = ("Brazil", "Germany", "Canada", "Norway", "Czech Republic", "Austria", "Belgium",
             "Denmark", "USA", "Portugal", "France", "Finland", "Hungary", "Ireland", "Italy",
             "Netherlands", "Poland", "Spain", "Sweden", "United Kingdom", "Australia",
             "Argentina", "Chile", "India", "日本", "مصر")
CITIES = ("São José dos Campos", "Stuttgart", "Montréal", "Oslo", "Prague", "Vienne",
          "Brussels", "Copenhagen", "Mountain View", "Lisbon", "Paris", "Helsinki",
          "Budapest", "Dublin", "Rome", "Amsterdam", "Warsaw", "Madrid", "Stockholm", "London",
          "Sidney", "Buenos Aires", "Santiago", "Delhi", "東京", "القاهرة")
EMPLOYEES = (  # id, last, first, title, reports to, born (y, m, d), hired (y, m, d)
    (1, "Adams", "Andrew", "General Manager", None, (1962, 2, 18), (2002, 8, 14)),
    (2, "Edwards", "Nancy", "Sales Manager", 1, (1958, 12, 8), (2002, 5, 1)),
    (3, "Peacock", "Jane", "Sales Support Agent", 2, (1973, 8, 29), (2002, 4, 1)),
    (4, "Park", "Margaret", "Sales Support Agent", 2, (1947, 9, 19), (2003, 5, 3)),
    (5, "Johnson", "Steve", "Sales Support Agent", 2, (1965, 3, 3), (2003, 10, 17)),
    (6, "Mitchell", "Michael", "IT Manager", 1, (1973, 7, 1), (2003, 10, 17)),
    (7, "King", "Robert", "IT Staff", 6, (1970, 5, 29), (2004, 1, 2)),
    (8, "Callahan", "Laura", "IT Staff", 6, (1968, 1, 9), (2004, 3, 4)),
)
PRICES = (Decimal("0.99"), Decimal("0.99"), Decimal("1.99"), Decimal("1.00"), Decimal("2.00"))
FIRST_INVOICE = datetime(2021, 1, 1)


def sizes(scale: int) -> dict[str, int]:
    if not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be between 1 and {MAX_SCALE}, not {scale}")
    return {"artists": 60 * scale, "albums": 90 * scale, "tracks": 600 * scale,
            "customers": 59 * scale, "invoices": 412 * scale}


def generate(kind: str, scale: int = 1) -> dict[str, TableRows]:
    """Every table's rows, parents before children."""
    size = sizes(scale)
    sqlite = kind == "sqlite"
    return {
        "Artist": TableRows(("ArtistId", "Name"), [
            (i, None if i % 41 == 0 else _cycle(ARTISTS, i, 30)) for i in
            range(1, size["artists"] + 1)]),
        "Genre": TableRows(("GenreId", "Name"), list(enumerate(GENRES, 1))),
        "MediaType": TableRows(("MediaTypeId", "Name"), list(enumerate(MEDIA_TYPES, 1))),
        "Album": TableRows(("AlbumId", "Title", "ArtistId"), [
            (i, _cycle(WORDS, i * 7, 50), (i * 7) % (size["artists"] - 1) + 1)
            for i in range(1, size["albums"] + 1)]),
        "Track": tracks(size, sqlite),
        "Playlist": TableRows(("PlaylistId", "Name"), list(enumerate(PLAYLISTS, 1))),
        "PlaylistTrack": TableRows(("PlaylistId", "TrackId"), [
            (p, t) for p in range(1, len(PLAYLISTS) + 1)
            for t in range(1, size["tracks"] + 1) if (t * 31 + p * 7) % 9 == 0]),
        "Employee": employees(sqlite),
        "Customer": customers(size),
        "Invoice": invoices(size),
        "InvoiceLine": invoice_lines(size),
    }


def _cycle(values: tuple[str, ...], i: int, limit: int) -> str:
    """values[i % len], with a round number once the list has been used up (kept within
    `limit` characters)."""
    value = values[i % len(values)]
    turn = i // len(values)
    return value if turn == 0 else f"{value} {turn}"[:limit]


def tracks(size: dict[str, int], sqlite: bool) -> TableRows:
    rows = []
    for i in range(1, size["tracks"] + 1):
        size_bytes: int | None = 1_000_000 + (i * 7919) % 10_000_000
        if i % 47 == 0:
            size_bytes = None
        if sqlite and i == 2:
            size_bytes = BIG_BYTES
        if sqlite and i == 3:
            size_bytes = NEGATIVE_BYTES
        rows.append((i, _cycle(WORDS + ARTISTS, i, 200),
                     None if i % 50 == 0 else (i - 1) % size["albums"] + 1,
                     i % len(MEDIA_TYPES) + 1, None if i % 40 == 0 else i % len(GENRES) + 1,
                     COMPOSERS[i % len(COMPOSERS)], 60_000 + (i * 104_729) % 600_000,
                     size_bytes, PRICES[i % len(PRICES)]))
    return TableRows(("TrackId", "Name", "AlbumId", "MediaTypeId", "GenreId", "Composer",
                      "Milliseconds", "Bytes", "UnitPrice"), rows)


def employees(sqlite: bool) -> TableRows:
    """The eight employees of the shop; ReportsTo builds a three-level tree under 1."""
    rows = []
    for number, last, first, title, boss, born, hired in EMPLOYEES:
        extension: str | None = f"{number * 111}"
        if number == 4:
            extension = LONG_EXTENSION if sqlite else "4444"
        if number in (7, 8):
            extension = None if number == 7 else ""
        rows.append((number, last, first, title, boss, datetime(*born), datetime(*hired),
                     f"{number * 100} {CITIES[number]} Road", CITIES[number],
                     "AB" if number % 2 else None, "Canada", f"T2P {number}K{number}",
                     f"+1 (403) 262-{3443 + number}", "" if number == 3 else None,
                     f"{first.lower()}@chinookcorp.com", extension))
    return TableRows(("EmployeeId", "LastName", "FirstName", "Title", "ReportsTo", "BirthDate",
                      "HireDate", "Address", "City", "State", "Country", "PostalCode",
                      "Phone", "Fax", "Email", "Extension"), rows)


def customers(size: dict[str, int]) -> TableRows:
    rows = []
    for i in range(1, size["customers"] + 1):
        first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
        company = (None, "", "Embraer - Empresa Brasileira de Aeronáutica S.A.",
                   "JetBrains s.r.o.", "株式会社 テスト")[i % 5]
        country = COUNTRIES[i % len(COUNTRIES)]
        rows.append((i, first, last, company, f"{i} Rua {last}", CITIES[i % len(CITIES)],
                     None if i % 3 else "SP", country, None if i % 7 == 0 else f"{i:05d}",
                     f"+55 (12) 3923-{5555 + i}", "" if i % 4 == 0 else None,
                     f"{first.lower()}.{i}@example.com", 3 + i % 3))
    return TableRows(("CustomerId", "FirstName", "LastName", "Company", "Address", "City",
                      "State", "Country", "PostalCode", "Phone", "Fax", "Email",
                      "SupportRepId"), rows)


def _line_count(invoice: int) -> int:
    return (1, 2, 2, 4, 6, 9, 14)[invoice % 7]


def invoice_lines(size: dict[str, int]) -> TableRows:
    rows, number = [], 0
    for invoice in range(1, size["invoices"] + 1):
        for k in range(_line_count(invoice)):
            number += 1
            track = (invoice * 13 + k * 17) % size["tracks"] + 1
            rows.append((number, invoice, track, PRICES[track % len(PRICES)], 1 + k % 2))
    return TableRows(("InvoiceLineId", "InvoiceId", "TrackId", "UnitPrice", "Quantity"), rows)


def invoices(size: dict[str, int]) -> TableRows:
    """Invoice totals are the sums of their lines."""
    totals: dict[int, Decimal] = {}
    for _, invoice, _, price, quantity in invoice_lines(size).rows:
        totals[invoice] = totals.get(invoice, Decimal(0)) + price * quantity
    rows: list[tuple[Any, ...]] = []
    for i in range(1, size["invoices"] + 1):
        customer = (i * 17) % size["customers"] + 1
        rows.append((i, customer, FIRST_INVOICE + timedelta(days=i // 2, hours=i % 24),
                     f"{customer} Billing Street", CITIES[customer % len(CITIES)],
                     None if customer % 3 else "SP", COUNTRIES[customer % len(COUNTRIES)],
                     None if customer % 7 == 0 else f"{customer:05d}", totals[i]))
    return TableRows(("InvoiceId", "CustomerId", "InvoiceDate", "BillingAddress",
                      "BillingCity", "BillingState", "BillingCountry", "BillingPostalCode",
                      "Total"), rows)
