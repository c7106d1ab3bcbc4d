"""Identifiers: how a source name becomes a target name, and how names travel safely.

Every name read from a database is data. It reaches SQL only through SQLAlchemy's quoting
(Core constructs such as `TableName.clause`, or a dialect's identifier preparer), reaches a
shell only through `shlex.quote`, and a file name only through `file_stem`.

The rule that turns source names into target names is chosen once (`pt scaffold
--identifiers`) and recorded in every transform file (`options.identifiers`):
  downcase  every name in lower case, as PostgreSQL folds unquoted names (pgloader's
            default, "downcase identifiers"): `GenreId` -> `genreid`
  keep      the source's spelling exactly, quoted wherever it is written: `GenreId`
Either way a target name is at most 63 bytes (PostgreSQL's limit, which would otherwise
truncate silently) and names that become equal in one table or schema are told apart with a
numbered suffix, each change reported.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import TableClause, column, table
from sqlalchemy.dialects import postgresql

# PostgreSQL keeps NAMEDATALEN - 1 bytes of an identifier.
MAX_IDENTIFIER_BYTES = 63
# A dialect of the "named" paramstyle: the default (pyformat) doubles every % for the driver,
# which text written into a DDL file and run as it is would keep ('100%' became '100%%', a
# column "value %s" became "value %%s").
_PG_DIALECT: Any = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_PG_PREPARER = _PG_DIALECT.identifier_preparer


class IdentifierRule(StrEnum):
    """How source names become target names."""

    DOWNCASE = "downcase"
    KEEP = "keep"
    # Files without `options.identifiers` (the Pulsaride format as first published): only
    # upper-case names, Oracle's unquoted spelling, are folded to lower case.
    FOLD_UPPER = "fold-upper"


def apply_rule(name: str, rule: IdentifierRule) -> str:
    """`name` spelled by `rule`, before length limits and de-duplication."""
    if rule is IdentifierRule.DOWNCASE:
        return name.lower()
    if rule is IdentifierRule.FOLD_UPPER and name == name.upper():
        return name.lower()
    return name


def truncate(name: str, limit: int = MAX_IDENTIFIER_BYTES) -> str:
    """`name` cut to at most `limit` UTF-8 bytes, never inside a character."""
    encoded = name.encode()
    if len(encoded) <= limit:
        return name
    return encoded[:limit].decode(errors="ignore")


@dataclass(frozen=True)
class Renamed:
    """A source name whose target name is not simply the rule's spelling, and why."""

    source: str
    target: str
    why: str


def target_names(names: Sequence[str], rule: IdentifierRule,
                 taken: Iterable[str] = ()) -> tuple[list[str], list[Renamed]]:
    """Target names for `names` (one scope: the columns of a table, or the tables of a
    schema), in order: the rule's spelling, cut to 63 bytes, made unique with `_2`, `_3`...
    Names in `taken` are already used in the scope. Also returns what had to change."""
    used = set(taken)
    result: dict[int, str] = {}
    renamed: list[Renamed] = []
    # Names the rule leaves as they are keep them; the others yield: `genre` stays `genre`
    # and `Genre` becomes `genre_2`, whatever order the source lists them in.
    order = sorted(range(len(names)), key=lambda i: apply_rule(names[i], rule) != names[i])
    owner: dict[str, str] = {}
    for index in order:
        name = names[index]
        spelled = apply_rule(name, rule)
        wanted = truncate(spelled)
        chosen = _free(wanted, used)
        used.add(chosen)
        owner.setdefault(wanted, name)
        result[index] = chosen
        if chosen != wanted:
            holder = owner.get(wanted)
            by = f"by {holder!r}" if holder is not None and holder != name else "already"
            renamed.append(Renamed(name, chosen, f"{wanted!r} is taken {by}"))
        elif wanted != spelled:
            renamed.append(Renamed(name, chosen, "longer than PostgreSQL's 63 bytes"))
    return [result[i] for i in range(len(names))], renamed


def _free(wanted: str, used: set[str]) -> str:
    if wanted not in used:
        return wanted
    number = 2
    while True:
        suffix = f"_{number}"
        candidate = truncate(wanted, MAX_IDENTIFIER_BYTES - len(suffix)) + suffix
        if candidate not in used:
            return candidate
        number += 1


def match_name(wanted: str, present: Iterable[str]) -> str | None:
    """The name among `present` that `wanted` means: itself, else the one name equal to it
    but for case (a file written by hand); None when absent or ambiguous."""
    names = list(present)
    if wanted in names:
        return wanted
    same = [n for n in names if n.lower() == wanted.lower()]
    return same[0] if len(same) == 1 else None


def one_line(text: str) -> str:
    """`text` fit for a comment line of a generated file (SQL `--`, YAML `#`): control
    characters, line breaks above all, which would end the comment and make the rest code,
    become spaces."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029\x85" else c
                   for c in text)


def quote(name: str) -> str:
    """`name` as PostgreSQL DDL must spell it (quoted when it would otherwise fold or not
    parse), by SQLAlchemy's PostgreSQL identifier preparer."""
    return str(_PG_PREPARER.quote(name))


@dataclass(frozen=True, order=True)
class TableName:
    """A table's exact name and, when given, its schema."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        """For people: schema.name (not SQL; see `clause` and `quoted`)."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def quoted(self) -> str:
        """PostgreSQL's spelling, quoted as needed (for generated DDL files)."""
        return f"{quote(self.schema)}.{quote(self.name)}" if self.schema else quote(self.name)

    def clause(self, *columns: str) -> TableClause:
        """A Core table construct with these columns: SQLAlchemy quotes every name."""
        return table(self.name, *(column(c) for c in columns), schema=self.schema)

    def key(self) -> str:
        """The text that stands for this table in pt's own tables (registry, deferred rows,
        validations): the bare name when that cannot be mistaken, else a JSON pair."""
        if self.schema is None and not self.name.startswith("["):
            return self.name
        return orjson.dumps([self.schema, self.name]).decode()

    @classmethod
    def from_key(cls, key: str) -> TableName:
        """Inverse of `key`."""
        if key.startswith("["):
            schema, name = orjson.loads(key)
            return cls(name, schema)
        return cls(key)


def file_stem(name: str, taken: Iterable[str] = ()) -> str:
    """A file and job name for a table: letters, digits, `_`, `-` only, at most 60
    characters; a name that had to change gets a short hash of the original, so two
    tables never share a file."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_-")[:48] or "table"
    if not slug[0].isalnum():
        slug = f"t{slug}"
    if slug != name:
        slug = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    used = set(taken)
    candidate, number = slug, 2
    while candidate in used:
        candidate, number = f"{slug}-{number}", number + 1
    return candidate


def literal(value: str) -> str:
    """A SQL string literal of `value` for generated PostgreSQL DDL, rendered by SQLAlchemy's
    PostgreSQL compiler."""
    from sqlalchemy import literal as bound  # noqa: PLC0415

    return str(bound(value).compile(dialect=_PG_DIALECT,
                                    compile_kwargs={"literal_binds": True}))
