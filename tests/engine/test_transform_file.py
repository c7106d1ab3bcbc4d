"""Transform files (pure): loading, validation with every problem named, defaults, identifier
folding, and where database URLs and passwords come from."""

from __future__ import annotations

import hashlib
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from pulsaride.engine.errors import BadInputError
from pulsaride.migration.canonical import key_value_text
from pulsaride.migration.database import SOURCE, TARGET, describe, resolve_url
from pulsaride.migration.names import IdentifierRule, TableName
from pulsaride.migration.target_inspection import split_statements
from pulsaride.migration.transform import (
    DEFAULT_BATCH_SIZE,
    ColumnRef,
    OnMissing,
    RejectPolicy,
    fold,
    load_transform,
)
from pulsaride.migration.writer import dumps, loads


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(BadInputError) as raised:
        load_transform(write(tmp_path, text))
    assert raised.value.exit_code == 2
    return str(raised.value)


FULL = """\
    name: order-lines
    version: 2
    source_url: sqlite:///src.db
    target_url: postgresql://u@h/db
    sources:
      - {name: lines, table: APP.ORDER_LINES, alias: l}
      - {name: orders, table: ORDERS, alias: o}
    joins:
      - {from: l, to: o, on: "l.ORDER_ID = o.ORDER_ID", type: left}
    fields:
      - {name: order_id, source: l.ORDER_ID, target_type: bigint}
      - {name: line_no, source: LINE_NO}
      - {name: total, source: [l.QTY, l.PRICE], expression: "?1 * ?2"}
      - {name: placed_on, source: o.PLACED, expression: "to_date(?)"}
    filter: "o.STATUS != 'VOID'"
    target_table: sales.order_lines
    source_key: [l.ORDER_ID, l.LINE_NO]
    key: [order_id, line_no]
    depends_on:
      - {table: sales.orders, key: order_id, via: l.ORDER_ID}
      - {table: products, key: id, via: l.PRODUCT_ID, on_missing: FAIL}
    reject_policy: FAIL_ROW
    expect: {sample_pct: 5, key_columns: [order_id, line_no], count_tolerance: 0}
    options: {empty_string_as_null: false, fold_identifiers: false, batch_size: 500}
    """


def test_a_full_transform_file_loads_into_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    t = load_transform(path)
    assert t.name == "order-lines"
    assert t.version == "2"
    assert t.path == path.resolve()
    assert t.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [(s.name, s.alias, s.relation) for s in t.sources] == [
        ("lines", "l", TableName("ORDER_LINES", "APP")), ("orders", "o", TableName("ORDERS"))]
    assert t.primary.alias == "l"
    assert [(j.left, j.right, j.kind) for j in t.joins] == [("l", "o", "LEFT")]
    assert t.fields is not None
    assert [f.name for f in t.fields] == ["order_id", "line_no", "total", "placed_on"]
    assert t.fields[0].target_type == "bigint"
    assert t.fields[1].sources == (ColumnRef("l", "LINE_NO"),)  # alias defaults to the first
    assert t.fields[2].evaluate is not None
    assert t.fields[2].evaluate([3, Decimal("2.50")]) == Decimal("7.50")
    assert t.fields[0].evaluate is None
    assert t.filter == "o.STATUS != 'VOID'"
    assert t.target == TableName("order_lines", "sales")
    assert t.source_key == (ColumnRef("l", "ORDER_ID"), ColumnRef("l", "LINE_NO"))
    assert t.key == ("order_id", "line_no")
    assert [(str(d.parent), d.key, d.via, d.on_missing) for d in t.depends_on] == [
        ("sales.orders", "order_id", ColumnRef("l", "ORDER_ID"), OnMissing.DEFER),
        ("products", "id", ColumnRef("l", "PRODUCT_ID"), OnMissing.FAIL)]
    assert t.reject_policy is RejectPolicy.FAIL_ROW
    assert t.expect == {"sample_pct": 5, "key_columns": ["order_id", "line_no"],
                        "count_tolerance": 0}
    assert (t.options.empty_string_as_null, t.options.identifiers,
            t.options.batch_size) == (False, IdentifierRule.KEEP, 500)
    assert (t.source_url, t.target_url) == ("sqlite:///src.db", "postgresql://u@h/db")


def test_a_minimal_transform_file_gets_the_defaults(tmp_path: Path) -> None:
    t = load_transform(write(tmp_path, "sources: [{name: c, table: CUSTOMERS}]\n"))
    assert t.target_table == "customers"  # folded from the upper-case source table
    assert t.name == "customers"
    assert t.version == "1"
    assert t.fields is None  # every column of the source
    assert t.sources[0].alias == "c"
    assert t.depends_on == ()
    assert t.reject_policy is RejectPolicy.FAIL
    assert t.options.empty_string_as_null is None  # auto: decided by the source dialect
    assert t.options.identifiers is IdentifierRule.FOLD_UPPER and not t.options.exact_names
    assert t.options.batch_size == DEFAULT_BATCH_SIZE
    assert t.source_url is None and t.target_url is None


def test_fold_identifiers_false_keeps_the_source_spelling(tmp_path: Path) -> None:
    t = load_transform(write(tmp_path, """\
        sources: [{name: c, table: CUSTOMERS}]
        options: {fold_identifiers: false}
        """))
    assert t.target_table == "CUSTOMERS"


def test_empty_string_as_null_auto_true_false(tmp_path: Path) -> None:
    for value, expected in (("auto", None), ("true", True), ("false", False)):
        t = load_transform(write(tmp_path, f"""\
            sources: [{{name: c, table: C}}]
            options: {{empty_string_as_null: {value}}}
            """))
        assert t.options.empty_string_as_null is expected


@pytest.mark.parametrize(("name", "expected"), [
    ("CUSTOMERS", "customers"), ("ORDER_ITEMS", "order_items"), ("Customers", "Customers"),
    ("customers", "customers"), ("MixedCASE", "MixedCASE"), ("T1$X#", "t1$x#"),
])
def test_fold_only_changes_unquoted_upper_case_names(name: str, expected: str) -> None:
    assert fold(name) == expected
    assert fold(name, enabled=False) == name


def test_the_sha256_changes_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: [{name: c, table: C}]\n")
    first = load_transform(path).sha256
    path.write_text("sources: [{name: c, table: C}]\nversion: 2\n")
    assert load_transform(path).sha256 != first


# ---- every problem at once, each naming its place ----------------------------------------------


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such transform file"):
        load_transform(tmp_path / "missing.yaml")
    with pytest.raises(BadInputError, match="is a directory"):
        load_transform(tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ("sources: [\n", "t.yaml"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("- just\n- a list\n", "a transform file is a mapping"),
    ("", "a transform file is a mapping"),
    ("!!python/object/apply:os.system ['id']\n", "t.yaml"),
])
def test_invalid_yaml(tmp_path: Path, text: str, message: str) -> None:
    assert message in problems(tmp_path, text)


def test_unknown_keys_are_named_at_every_level(tmp_path: Path) -> None:
    text = problems(tmp_path, """\
        sources: [{name: c, table: C, owner: X}]
        fields: [{name: a, source: c.A, type: int}]
        taget_table: typo
        options: {batchsize: 5}
        """)
    assert "top level: Additional properties are not allowed ('taget_table'" in text
    assert "sources.0: Additional properties are not allowed ('owner'" in text
    assert "fields.0: Additional properties are not allowed ('type'" in text
    assert "options: Additional properties are not allowed ('batchsize'" in text


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\n", "top level: 'sources' is a required property"),
    ("sources: []\n", "sources: [] should be non-empty"),
    ("sources: [{name: c, table: C}]\ndepends_on: [{table: p, key: id, via: c.P, "
     "on_missing: IGNORE}]\n", "depends_on.0.on_missing: 'IGNORE' is not one of"),
    ("sources: [{name: c, table: C}]\nreject_policy: SKIP\n", "reject_policy: 'SKIP'"),
    ("sources: [{name: c, table: C}]\noptions: {batch_size: 0}\n",
     "options.batch_size: 0 is less than the minimum of 1"),
    ("sources: [{name: c, table: C}]\nfields: [{name: a, source: []}]\n", "fields.0.source"),
])
def test_schema_problems(tmp_path: Path, text: str, message: str) -> None:
    assert message in problems(tmp_path, text)


def test_semantic_problems_are_all_reported_with_their_field(tmp_path: Path) -> None:
    text = problems(tmp_path, """\
        sources:
          - {name: a, table: A}
          - {name: b, table: B, alias: a}
          - {name: nothing}
        joins: [{from: a, to: zz, on: "1 = 1"}]
        fields:
          - {name: x, source: q.X}
          - {name: y}
          - {name: z, source: a.Z, expression: "upper(?2)"}
          - {name: x, source: a.X}
        filter: "a.X = = 1"
        key: [x, not_a_field]
        depends_on: [{table: p, key: id, via: nope.P}]
        """)
    assert "sources: aliases must be unique (got a, a, nothing)" in text
    assert "sources: 'nothing' needs a table or an sql query" in text
    assert "joins: 'zz' is not a source alias" in text
    assert "fields[0] 'x': 'q.X' names the unknown source alias 'q'" in text
    assert "fields[1] 'y': needs a source, an expression, or both" in text
    assert "fields[2] 'z': bad expression 'upper(?2)': ?2 refers to source value 2" in text
    assert "fields: target column names must be unique" in text
    assert "filter 'a.X = = 1': expected a value, found '=' at position 7" in text
    assert "key: 'not_a_field' is not a field" in text
    assert "depends_on[0].via: 'nope.P' names the unknown source alias 'nope'" in text
    # One line per problem, each prefixed with the file.
    lines = text.splitlines()
    assert len(lines) >= 10
    assert all(line.startswith(str(tmp_path / "t.yaml")) for line in lines)


def test_an_expression_without_source_is_allowed(tmp_path: Path) -> None:
    t = load_transform(write(tmp_path, """\
        sources: [{name: c, table: C}]
        fields: [{name: migrated, expression: "'yes'"}, {name: id, source: ID}]
        """))
    assert t.fields is not None
    assert t.fields[0].evaluate is not None
    assert t.fields[0].evaluate([]) == "yes"


def test_a_sql_source(tmp_path: Path) -> None:
    t = load_transform(write(tmp_path, """\
        sources: [{name: recent, sql: "SELECT * FROM ORDERS WHERE 1 = 1", alias: r}]
        target_table: orders
        source_key: [r.ID]
        """))
    assert t.primary.sql == "SELECT * FROM ORDERS WHERE 1 = 1"
    assert t.primary.table is None
    assert t.target_table == "orders"


# ---- where URLs come from --------------------------------------------------------------------


def test_url_flag_beats_the_file_which_beats_the_environment() -> None:
    env = {"PT_SOURCE_URL": "sqlite:///env.db", "HOST": "db.example"}
    assert str(resolve_url(SOURCE, "sqlite:///flag.db", "sqlite:///file.db", env)) == \
        "sqlite:///flag.db"
    assert str(resolve_url(SOURCE, None, "postgresql://u@$HOST/x", env)) == \
        "postgresql+psycopg://u@db.example/x"
    assert str(resolve_url(SOURCE, None, "mysql://u@${HOST}:3306/x", env)) == \
        "mysql+pymysql://u@db.example:3306/x"
    assert str(resolve_url(SOURCE, None, None, env)) == "sqlite:///env.db"


@pytest.mark.parametrize(("given", "driver"), [
    ("postgresql://u@h/d", "postgresql+psycopg"), ("postgres://u@h/d", "postgresql+psycopg"),
    ("mysql://u@h/d", "mysql+pymysql"), ("mariadb://u@h/d", "mariadb+pymysql"),
    ("oracle://u@h/d", "oracle+oracledb"), ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2"),
    ("sqlite:///x.db", "sqlite"),
])
def test_short_driver_names_get_the_shipped_drivers(given: str, driver: str) -> None:
    assert resolve_url(TARGET, given, None, {}).drivername == driver


def test_passwords_come_from_pt_src_pass_and_pt_tgt_pass_unless_in_the_url() -> None:
    env = {"PT_SRC_PASS": "s3cret", "PT_TGT_PASS": "t0p"}
    source = resolve_url(SOURCE, "postgresql://app@h/d", None, env)
    target = resolve_url(TARGET, "postgresql://app@h/d", None, env)
    assert (source.password, target.password) == ("s3cret", "t0p")
    assert resolve_url(SOURCE, "postgresql://app:given@h/d", None, env).password == "given"
    assert "s3cret" not in describe(source)  # never shown in messages or the registry
    # SQLite has no passwords (and refuses URLs with one): the variables leave it alone.
    assert resolve_url(TARGET, "sqlite:///t.db", None, env).password is None


def test_no_url_anywhere_says_where_one_may_come_from() -> None:
    with pytest.raises(BadInputError) as raised:
        resolve_url(TARGET, None, None, {})
    assert str(raised.value) == ("no target database: give --target-url, set target_url in "
                                 "the transform file, or set PT_TARGET_URL")


def test_an_unset_variable_in_a_file_url_is_named() -> None:
    with pytest.raises(BadInputError) as raised:
        resolve_url(SOURCE, None, "postgresql://u@$DB_HOST/x", {})
    assert str(raised.value) == "the source URL uses $DB_HOST, which is not set"
    with pytest.raises(BadInputError, match="bad \\$ placeholder"):
        resolve_url(SOURCE, None, "postgresql://u@h/$", {})


def test_a_url_that_is_not_a_url_is_refused_without_its_password() -> None:
    with pytest.raises(BadInputError) as raised:
        resolve_url(SOURCE, "not a url with pass:word", None, {})
    assert "the source URL is not a database URL" in str(raised.value)
    assert "word" not in str(raised.value)


# ---- small pure helpers the copy relies on ------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (5, "5"), (5.0, "5"), ("5", "5"), ("5.00", "5"), (Decimal("5.000"), "5"), (True, "1"),
    ("-12.0", "-12"), (Decimal("5.5"), "5.5"), ("abc", "abc"), ("007", "007"),
])
def test_key_values_compare_equal_across_drivers(value: object, expected: str) -> None:
    assert key_value_text(value) == expected


def test_payloads_survive_json_with_bytes_decimals_and_dates() -> None:
    from datetime import date, datetime  # noqa: PLC0415

    values = {"b": b"\x00\xffraw", "d": Decimal("12.50"), "day": date(2024, 2, 29),
              "at": datetime(2024, 2, 29, 1, 2, 3), "n": None, "s": "é", "i": 7}
    back = loads(dumps(values))
    assert back == {"b": b"\x00\xffraw", "d": "12.50", "day": "2024-02-29",
                    "at": "2024-02-29T01:02:03", "n": None, "s": "é", "i": 7}


def test_schema_files_split_at_semicolons_outside_quotes_and_comments() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE a (x text DEFAULT 'a;b');
        CREATE TABLE "b;c" (y int);  -- trailing; comment
        INSERT INTO a VALUES ('it''s; fine')
    """
    assert split_statements(script) == [
        "CREATE TABLE a (x text DEFAULT 'a;b')", 'CREATE TABLE "b;c" (y int)',
        "INSERT INTO a VALUES ('it''s; fine')"]
