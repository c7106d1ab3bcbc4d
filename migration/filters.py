"""Transform-file filters, translated from the grammar into SQLAlchemy expressions, so the
source database does the filtering (and values travel as bound parameters, never as text)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Dialect,
    String,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    true,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from .grammar import (
    Binary,
    Call,
    Case,
    Column,
    GrammarError,
    InList,
    IsNull,
    Literal,
    Node,
    Param,
    Unary,
    parse,
)

ColumnResolver = Callable[[Column], ColumnElement[Any]]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?$")
_SQL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "upper": func.upper, "lower": func.lower, "trim": func.trim, "coalesce": func.coalesce,
    "nullif": func.nullif}


def compile_filter(text: str, resolve: ColumnResolver) -> ColumnElement[bool]:
    """The SQLAlchemy condition of a filter; GrammarError for bad text or unknown columns."""
    condition: ColumnElement[bool] = _sql(parse(text), resolve)
    return condition


def _sql(node: Node, resolve: ColumnResolver) -> Any:
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Column):
        return resolve(node)
    if isinstance(node, Param):
        raise GrammarError("a filter names columns; ? is only for field expressions")
    if isinstance(node, Call):
        function = _SQL_FUNCTIONS.get(node.name)
        if function is None:
            raise GrammarError(f"function {node.name}() cannot be used in a filter "
                               f"(allowed: {', '.join(sorted(_SQL_FUNCTIONS))})")
        return function(*(_sql(arg, resolve) for arg in node.args))
    if isinstance(node, Unary):
        operand = _sql(node.operand, resolve)
        return not_(operand) if node.op == "NOT" else -operand
    if isinstance(node, Binary):
        return _binary(node, resolve)
    if isinstance(node, IsNull):
        operand = _sql(node.operand, resolve)
        return operand.is_not(None) if node.negated else operand.is_(None)
    if isinstance(node, InList):
        operand = _sql(node.operand, resolve)
        options = [_sql(option, resolve) for option in node.options]
        return operand.not_in(options) if node.negated else operand.in_(options)
    return _case(node, resolve)


def _binary(node: Binary, resolve: ColumnResolver) -> Any:
    left, right = _sql(node.left, resolve), _sql(node.right, resolve)
    match node.op:
        case "AND":
            return and_(left, right)
        case "OR":
            return or_(left, right)
        case "=":
            return left == right
        case "!=":
            return left != right
        case "<":
            return left < right
        case "<=":
            return left <= right
        case ">":
            return left > right
        case ">=":
            return left >= right
        case "+":
            return left + right
        case "-":
            return left - right
        case "*":
            return left * right
        case _:
            return left / right


def _case(node: Case, resolve: ColumnResolver) -> Any:
    whens = [(_sql(c, resolve), _sql(v, resolve)) for c, v in node.branches]
    default = _sql(node.default, resolve) if node.default is not None else None
    return case(*whens, else_=default)


def _literal(value: Any) -> Any:
    if value is None:
        return null()
    if value is True:
        return true()
    if value is False:
        return false()
    if isinstance(value, str):
        if _ISO_DATE.match(value):
            return literal(date.fromisoformat(value))
        if _ISO_TIMESTAMP.match(value):
            return literal(datetime.fromisoformat(value.replace("Z", "+00:00")), _Timestamp())
    return literal(value)


class _Timestamp(TypeDecorator[datetime]):
    """A timestamp literal; SQLite keeps timestamps as ISO text, so there it is bound as the
    text Python's sqlite3 (and pt's writer) store, '2024-01-01 12:00:00' — not SQLAlchemy's
    '2024-01-01 12:00:00.000000', which would not compare equal to it."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String() if dialect.name == "sqlite" else DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite" and isinstance(value, datetime):
            return value.isoformat(" ")
        return value
