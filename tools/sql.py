"""Read-only SQL over the shipped SQLite demo database (a small online shop)."""

import sqlite3
from pathlib import Path

from expressway.toolbox import read_only

DEMO_DATABASE = Path(__file__).parent / "data" / "demo.db"
_MAX_ROWS = 50
# Only reads are authorized; everything else (writes, ATTACH, PRAGMA changes) is denied.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}


class SQLToolError(ValueError):
    """The query was refused or failed."""


def _authorize(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def _connect(database: Path) -> sqlite3.Connection:
    # mode=ro makes the connection itself read-only, the authorizer also refuses ATTACH and PRAGMA.
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    connection.set_authorizer(_authorize)
    return connection


def run_query(query: str, database: Path = DEMO_DATABASE) -> str:
    """Run one read-only SQL statement against `database` and return the rows as text (a header
    line, then one line per row), or the bare value when the result is a single cell."""
    connection = _connect(database)
    try:
        cursor = connection.execute(query)
        columns = [column[0] for column in cursor.description or []]
        rows = cursor.fetchmany(_MAX_ROWS + 1)
    except (sqlite3.DatabaseError, sqlite3.ProgrammingError, sqlite3.Warning) as error:
        raise SQLToolError(f"query refused or failed: {error}") from error
    finally:
        connection.close()
    if len(columns) == 1 and len(rows) == 1:
        return str(rows[0][0])  # a single value (COUNT, SUM, a price) is returned bare
    lines = [" | ".join(columns)]
    lines += [" | ".join(str(value) for value in row) for row in rows[:_MAX_ROWS]]
    if len(rows) > _MAX_ROWS:
        lines.append(f"... (more than {_MAX_ROWS} rows; add LIMIT or aggregate)")
    return "\n".join(lines)


@read_only
def sql_query(query: str) -> str:
    """Run one read-only SQLite SELECT over the shop database and return the rows.

    Tables: products(id, name, category, price_usd, stock),
    customers(id, name, city, country, joined_on),
    orders(id, customer_id, product_id, quantity, status, ordered_on) with status in
    pending/shipped/delivered/cancelled, employees(id, name, team, title, office, timezone, email).
    """
    return run_query(query)
