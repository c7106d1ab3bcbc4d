"""Cycles of waiting rows (migration/waiting.py), without a database: a cycle is found among
rows, named by its tables once, and a chain of rows that ends at a missing parent is none."""

from __future__ import annotations

from pulsaride.migration.waiting import Cycle, ParkedRow, Waiting, table_cycle


def row(id_: int, table: str, own: dict[str, object],
        *needs: tuple[str, str, object]) -> ParkedRow:
    """A parked row of `table` holding `own`, waiting for (parent table, key, value)s."""
    return ParkedRow(str(id_), table, own, tuple((p, k, str(v)) for p, k, v in needs))


def test_two_tables_waiting_for_each_other_are_one_cycle() -> None:
    waiting = Waiting([
        row(1, "store", {"store_id": 1}, ("staff", "staff_id", 1)),
        row(2, "staff", {"staff_id": 1}, ("store", "store_id", 1)),
        row(3, "store", {"store_id": 2}, ("staff", "staff_id", 2)),
        row(4, "staff", {"staff_id": 2}, ("store", "store_id", 2)),
        row(5, "staff", {"staff_id": 3}, ("store", "store_id", 1)),  # waits on the cycle
    ])
    assert waiting.cycles() == [Cycle(("staff", "store", "staff"), ("staff", "store"), 4)]
    assert waiting.parked("store", "store_id", 1) and waiting.parked("staff", "staff_id", "3")
    assert not waiting.parked("store", "store_id", 3)


def test_a_longer_cycle_and_a_row_waiting_for_itself() -> None:
    waiting = Waiting([
        row(1, "a", {"id": 1}, ("b", "id", 1)),
        row(2, "b", {"id": 1}, ("c", "id", 1)),
        row(3, "c", {"id": 1}, ("a", "id", 1)),
        row(4, "emp", {"id": 7, "boss": 7}, ("emp", "id", 7)),  # its own manager
        row(5, "emp", {"id": 8, "boss": 9}, ("emp", "id", 9)),  # two managing each other
        row(6, "emp", {"id": 9, "boss": 8}, ("emp", "id", 8)),
    ])
    assert waiting.cycles() == [Cycle(("a", "b", "c", "a"), ("a", "b", "c"), 3),
                                Cycle(("emp", "emp"), ("emp",), 3)]


def test_a_chain_that_ends_at_a_missing_parent_is_no_cycle() -> None:
    waiting = Waiting([
        row(1, "emp", {"id": 3}, ("emp", "id", 2)),
        row(2, "emp", {"id": 2}, ("emp", "id", 1)),
        row(3, "emp", {"id": 1}, ("emp", "id", 99)),  # 99 is nowhere
        row(4, "order", {"id": 1}, ("customer", "id", 5)),
    ])
    assert waiting.cycles() == []
    assert waiting.parked("emp", "id", 2) and not waiting.parked("emp", "id", 99)


def test_the_path_is_a_shortest_cycle_through_the_first_table() -> None:
    assert table_cycle({"b": {"a"}, "a": {"c", "b"}, "c": {"b"}}) == ("a", "b", "a")
    assert table_cycle({"x": {"y"}, "y": {"z"}, "z": {"x", "y"}}) == ("x", "y", "z", "x")
    assert table_cycle({"t": {"t", "u"}, "u": {"t"}}) == ("t", "t")
