"""The shipped tools do real work and refuse what they must."""

import sqlite3

import pytest

from tools.calculator import CalculatorError, calculator
from tools.clock import ClockError, convert_time, current_time
from tools.docs_search import search_docs, search_sections
from tools.sql import DEMO_DATABASE, SQLToolError, _connect, sql_query


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("(129 * 3) - 12.5", "374.5"),
        ("2^10", "1024"),
        ("sqrt(16) + pi", "7.141592653589793"),
        ("-3 // 2", "-2"),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: str) -> None:
    assert calculator(expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(1).__class__",
        "x + 1",
        "9**9**9",
        "1/0",
        "lambda: 1",
        "",
    ],
)
@pytest.mark.reliability("security")
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError):
        calculator(expression)


def test_sql_reads_the_demo_database() -> None:
    assert sql_query("SELECT COUNT(*) AS pending FROM orders WHERE status = 'pending'") == "4"
    rows = sql_query("SELECT name, stock FROM products WHERE stock < 10 ORDER BY stock")
    assert rows.splitlines() == [
        "name | stock",
        "Approach shoes | 0",
        "Basecamp 2-person tent | 5",
        "Featherlight rain jacket | 8",
    ]


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM orders",
        "INSERT INTO products VALUES (99, 'x', 'y', 1, 1)",
        "UPDATE products SET price_usd = 0",
        "DROP TABLE orders",
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA writable_schema = 1",
        "SELECT 1; DELETE FROM orders",
        "CREATE TABLE t (x)",
    ],
)
@pytest.mark.reliability("security")
def test_sql_refuses_writes_attach_and_multiple_statements(query: str) -> None:
    with pytest.raises(SQLToolError):
        sql_query(query)
    assert sql_query("SELECT COUNT(*) FROM orders") == "12"


@pytest.mark.reliability("security")
def test_sql_connection_itself_is_read_only() -> None:
    connection = _connect(DEMO_DATABASE)
    connection.set_authorizer(None)  # even without the authorizer, mode=ro refuses writes
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        connection.execute("DELETE FROM orders")
    connection.close()


def test_docs_search_finds_the_relevant_passage() -> None:
    assert "5-8 business days" in search_docs("shipping time to Canada")
    assert "two-year warranty" in search_docs("warranty")
    assert search_docs("zzzz qqqq").startswith("No document matches")


def test_clock_tools() -> None:
    assert "(Asia/Tokyo)" in current_time("Tokyo")
    assert "(Europe/Berlin)" in current_time("Europe/Berlin")
    assert convert_time("2026-01-15 09:00", "America/New_York", "Europe/London").endswith(
        "2026-01-15 14:00 Europe/London"
    )
    with pytest.raises(ClockError):
        current_time("Atlantis")
    with pytest.raises(ClockError):
        convert_time("nine", "UTC", "UTC")


@pytest.mark.reliability("security")
def test_docs_search_cannot_leave_its_folder(tmp_path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nThe vault code is 4417.\n")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policy.md").write_text("# Policy\n\nReturns within 30 days.\n")
    (folder / "shipping.md").write_text("# Shipping\n\nParcels leave Berlin daily.\n")
    (folder / "care.md").write_text("# Care\n\nWash the jacket cold.\n")
    (folder / "link.md").symlink_to(outside)
    (folder / "nested").mkdir()
    (folder / "nested" / "deep.md").write_text("# Deep\n\nThe vault code is 9999.\n")
    assert search_sections("vault code", folder).startswith("No document matches")
    assert "30 days" in search_sections("returns", folder)
