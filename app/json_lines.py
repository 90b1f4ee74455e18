"""Input files of JSON lines (`route --file`, the fork check's questions), read with errors that
name the file, the line and the shape each line must have."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

Parsed = TypeVar("Parsed")


def read_json_lines(
    path: str | Path,
    parse: Callable[[Any], Parsed],
    shape: str,
    what: str = "the file",
    error: type[ValueError] = ValueError,
) -> list[Parsed]:
    """`parse` of each non-empty line's JSON value. An unreadable file, or a line that is not
    JSON or that `parse` refuses (ValueError, KeyError, TypeError), raises `error` saying where
    and that each line is `shape`."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem}") from problem
    parsed = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError) as problem:
            raise error(
                f"{path} line {number}: {type(problem).__name__}: {problem}; each line is {shape}"
            ) from problem
    return parsed
