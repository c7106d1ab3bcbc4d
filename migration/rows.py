"""Target rows from source rows: a transform's fields applied to each row read.

Used by the copy (migrate.py) and by validation, so both compute the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, cast

from .expressions import RowError
from .transform import Field


class RowMaker:
    """Computes target rows from source rows (field values in target column order)."""

    def __init__(self, fields: Sequence[Field], positions: dict[Any, int],
                 empty_as_null: bool) -> None:
        self.steps: list[Callable[[Sequence[Any]], Any]] = [
            self._step(f, positions) for f in fields]
        self.names = [f.name for f in fields]
        self.empty_as_null = empty_as_null
        # Identity fields only (the common case): one C call per row builds the target row,
        # or none at all when the source row is the target row already.
        self.pick: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
        self.whole = False
        if fields and all(f.evaluate is None for f in fields):
            picked = [positions[f.sources[0]] for f in fields]
            self.pick = _picker(picked)
            self.whole = picked == list(range(len(positions)))

    @staticmethod
    def _step(field_: Field, positions: dict[Any, int]) -> Callable[[Sequence[Any]], Any]:
        indexes = [positions[ref] for ref in field_.sources]
        evaluate = field_.evaluate
        if evaluate is None:
            return itemgetter(indexes[0])
        if len(indexes) == 1:
            index = indexes[0]
            return lambda row: evaluate([row[index]])
        return lambda row: evaluate([row[i] for i in indexes])

    def rows(self, rows: Sequence[Sequence[Any]]) -> tuple[list[tuple[Any, ...] | None],
                                                           list[tuple[int, str]]]:
        """Target rows (None where a field failed) and (index, why) of the failures."""
        if self.pick is not None:  # nothing can fail
            made: list[tuple[Any, ...] | None]
            if self.whole and rows and type(rows[0]) is tuple:  # plain rows from the driver
                made = list(cast("Sequence[tuple[Any, ...]]", rows))
            else:
                made = list(map(self.pick, rows))
            if self.empty_as_null:
                made = [_nulls(values) if values is not None and "" in values else values
                        for values in made]
            return made, []
        made = []
        failures: list[tuple[int, str]] = []
        steps = self.steps
        for index, row in enumerate(rows):
            try:
                values = tuple([step(row) for step in steps])
            except (RowError, ValueError, TypeError, ArithmeticError) as exc:
                field_name = self._failing_field(row)
                failures.append((index, f"field {field_name}: {exc}"))
                made.append(None)
                continue
            if self.empty_as_null and "" in values:
                values = _nulls(values)
            made.append(values)
        return made, failures

    def _failing_field(self, row: Sequence[Any]) -> str:
        for name, step in zip(self.names, self.steps, strict=True):
            try:
                step(row)
            except (RowError, ValueError, TypeError, ArithmeticError):
                return name
        return "?"


def _picker(indexes: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function of a row giving the tuple of its values at `indexes`."""
    if len(indexes) == 1:
        index = indexes[0]
        return lambda row: (row[index],)
    return itemgetter(*indexes)


def _nulls(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Empty strings as NULL."""
    return tuple([None if v == "" else v for v in values])
