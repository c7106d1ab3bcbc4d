"""The grammar of transform expressions and filters: a tokenizer and a recursive-descent parser
producing a small AST. Never `eval`: only the constructs below exist.

    expression := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | comparison
    comparison := sum (("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum
                       | "IS" ["NOT"] "NULL" | ["NOT"] "IN" "(" expression ("," expression)* ")")?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "NULL" | "TRUE" | "FALSE" | "?" | "?N" | NAME "(" args ")"
                | NAME ["." NAME] | "(" expression ")"
                | "CASE" ("WHEN" expression "THEN" expression)+ ["ELSE" expression] "END"

Keywords are case-insensitive; strings use single quotes with '' as an escaped quote.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pulsaride.engine.errors import BadInputError


class GrammarError(BadInputError):
    """Text that is not a valid expression or filter; says where."""


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Param:
    """`?` (index 1) or `?N`: the Nth source value of the field."""

    index: int


@dataclass(frozen=True)
class Column:
    """A column reference: `COLUMN` or `alias.COLUMN` (filters)."""

    alias: str | None
    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "NOT"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / = != < <= > >= AND OR
    left: Node
    right: Node


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negated: bool


@dataclass(frozen=True)
class InList:
    operand: Node
    options: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True)
class Case:
    branches: tuple[tuple[Node, Node], ...]
    default: Node | None


Node = Literal | Param | Column | Call | Unary | Binary | IsNull | InList | Case

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+\.\d*|\.\d+|\d+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<param>\?\d*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_$#]*|"[^"]+")
  | (?P<op><=|>=|!=|<>|[-+*/=<>(),.])
""", re.VERBOSE)
_KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "IN", "TRUE", "FALSE", "CASE", "WHEN", "THEN",
             "ELSE", "END"}
MAX_LENGTH = 10_000
# Nesting levels (parentheses, calls, CASE, NOT, unary minus): each costs the parser about
# ten Python frames, so this keeps deep input a GrammarError, never a RecursionError.
MAX_DEPTH = 50
MAX_TREE_DEPTH = 100  # of the parsed tree, operator chains included


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    at: int


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`; GrammarError at the first character that starts none."""
    if len(text) > MAX_LENGTH:
        raise GrammarError(f"longer than {MAX_LENGTH} characters")
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise GrammarError(f"unexpected {text[position]!r} at position {position + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "name" and value.upper() in _KEYWORDS:
                kind, value = "keyword", value.upper()
            tokens.append(Token(kind, value, position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def parse(text: str) -> Node:
    """The AST of `text`."""
    node = _Parser(tokenize(text)).whole()
    if _tree_depth(node) > MAX_TREE_DEPTH:
        # Long chains (a - b - c - ...) parse in a loop but make deep trees, which compiling
        # and SQLAlchemy walk recursively.
        raise GrammarError(f"expression nested too deeply (more than {MAX_TREE_DEPTH} levels "
                           "of operators, calls and parentheses)")
    return node


def _tree_depth(root: Node) -> int:
    deepest, todo = 0, [(root, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        children: list[Node] = []
        if isinstance(node, Binary):
            children = [node.left, node.right]
        elif isinstance(node, Unary | IsNull):
            children = [node.operand]
        elif isinstance(node, Call):
            children = list(node.args)
        elif isinstance(node, InList):
            children = [node.operand, *node.options]
        elif isinstance(node, Case):
            children = [n for branch in node.branches for n in branch]
            children += [node.default] if node.default is not None else []
        todo += [(child, depth + 1) for child in children]
    return deepest


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.depth = 0

    # ---- token helpers ----

    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def accept(self, kind: str, *texts: str) -> Token | None:
        token = self.current
        if token.kind == kind and (not texts or token.text in texts):
            self.position += 1
            return token
        return None

    def expect(self, kind: str, *texts: str) -> Token:
        token = self.accept(kind, *texts)
        if token is None:
            wanted = " or ".join(repr(t) for t in texts) if texts else kind
            raise self.error(f"expected {wanted}")
        return token

    def error(self, message: str) -> GrammarError:
        token = self.current
        found = "the end" if token.kind == "end" else repr(token.text)
        return GrammarError(f"{message}, found {found} at position {token.at}")

    # ---- grammar ----

    def whole(self) -> Node:
        node = self.expression()
        if self.current.kind != "end":
            raise self.error("unexpected text after the expression")
        return node

    def expression(self) -> Node:
        return self.nested(self.disjunction)

    def nested(self, rule: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("expression nested too deeply")
        try:
            return rule()
        finally:
            self.depth -= 1

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.accept("keyword", "OR"):
            node = Binary("OR", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.accept("keyword", "AND"):
            node = Binary("AND", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.accept("keyword", "NOT"):
            return Unary("NOT", self.nested(self.negation))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        op = self.accept("op", "=", "!=", "<>", "<", "<=", ">", ">=")
        if op is not None:
            return Binary("!=" if op.text == "<>" else op.text, left, self.sum())
        if self.accept("keyword", "IS"):
            negated = self.accept("keyword", "NOT") is not None
            self.expect("keyword", "NULL")
            return IsNull(left, negated)
        negated = self.accept("keyword", "NOT") is not None
        if self.accept("keyword", "IN"):
            self.expect("op", "(")
            options = [self.expression()]
            while self.accept("op", ","):
                options.append(self.expression())
            self.expect("op", ")")
            return InList(left, tuple(options), negated)
        if negated:
            raise self.error("expected IN after NOT")
        return left

    def sum(self) -> Node:
        node = self.product()
        while (op := self.accept("op", "+", "-")) is not None:
            node = Binary(op.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while (op := self.accept("op", "*", "/")) is not None:
            node = Binary(op.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("op", "-"):
            return Unary("-", self.nested(self.unary))
        return self.primary()

    def primary(self) -> Node:
        token = self.current
        if self.accept("number"):
            text = token.text
            return Literal(Decimal(text) if "." in text else int(text))
        if self.accept("string"):
            return Literal(token.text[1:-1].replace("''", "'"))
        if self.accept("param"):
            return Param(int(token.text[1:] or "1"))
        if self.accept("keyword", "NULL"):
            return Literal(None)
        if self.accept("keyword", "TRUE", "FALSE"):
            return Literal(token.text == "TRUE")
        if self.accept("keyword", "CASE"):
            return self.case()
        if self.accept("op", "("):
            node = self.expression()
            self.expect("op", ")")
            return node
        if self.accept("name"):
            return self.name_or_call(token.text)
        raise self.error("expected a value")

    def name_or_call(self, name: str) -> Node:
        if self.accept("op", "("):
            args: list[Node] = []
            if not self.accept("op", ")"):
                args.append(self.expression())
                while self.accept("op", ","):
                    args.append(self.expression())
                self.expect("op", ")")
            return Call(name.lower(), tuple(args))
        if self.accept("op", "."):
            column = self.expect("name")
            return Column(_unquote(name), _unquote(column.text))
        return Column(None, _unquote(name))

    def case(self) -> Node:
        branches = []
        while self.accept("keyword", "WHEN"):
            condition = self.expression()
            self.expect("keyword", "THEN")
            branches.append((condition, self.expression()))
        if not branches:
            raise self.error("expected WHEN after CASE")
        default = self.expression() if self.accept("keyword", "ELSE") else None
        self.expect("keyword", "END")
        return Case(tuple(branches), default)


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name
