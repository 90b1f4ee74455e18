"""Turns a request into what the router reads, the same way for training and for routing: hashed
n-gram features of the whole text, and the instruction alone for the sentence encoder."""

import re
import zlib
from itertools import pairwise

import numpy as np

N_FEATURES = 1 << 15
_WORD = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)
# Long pasted inputs are routed on their beginning: the instruction is almost always there.
_MAX_CHARS = 2000


def _grams(text: str) -> list[str]:
    words = _WORD.findall(text[:_MAX_CHARS].lower())
    grams = [f"w:{word}" for word in words]
    grams += [f"b:{left} {right}" for left, right in pairwise(words)]
    grams.append(f"first:{words[0]}" if words else "first:")
    for word in words:
        padded = f"<{word}>"
        grams += [f"c:{padded[i : i + 4]}" for i in range(max(1, len(padded) - 3))]
    return grams


# Quoted material: "...", “...”, «...», `...`, and '...' opened after a space, colon or bracket (so
# that apostrophes inside words do not open a quote).
_QUOTED = re.compile(
    r'"[^"\n]{3,}"|“[^”]{3,}”|«[^»]{3,}»|`[^`]{2,}`|(?:(?<=[\s:(])|^)\'[^\'\n]{3,}?\'(?=[\s.,;:?!)]|$)'
)
# "Summarize: <pasted text of eight words or more>": the instruction is before the colon.
_PASTED_AFTER_COLON = re.compile(r"^([^:]{3,80}):\s+\S+(?:\s+\S+){7,}")
QUOTE = "QUOTE"


def instruction(text: str) -> str:
    """The request without the material it quotes or pastes: what the user asks to have done.

    A review to classify or an article to summarize says nothing about the task, and its topic
    (a shipment, a bug) would otherwise pull the request towards lookup or code. On several lines,
    the first and the last are kept: people ask, then paste, or paste, then ask."""
    lines = [line.strip() for line in _QUOTED.sub(f" {QUOTE} ", text).splitlines() if line.strip()]
    if not lines:
        return ""
    pasted = _PASTED_AFTER_COLON.match(lines[0])
    first = f"{pasted.group(1)}: {QUOTE}" if pasted else lines[0]
    return first if len(lines) == 1 else f"{first} {QUOTE} {lines[-1]}"


def featurize(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature indices and L2-normalized weights (sublinear counts) of `text`."""
    counts: dict[int, int] = {}
    for gram in _grams(text):
        index = zlib.crc32(gram.encode()) % N_FEATURES
        counts[index] = counts.get(index, 0) + 1
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    indices = np.fromiter(counts, dtype=np.int64, count=len(counts))
    values = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
    return indices, values / np.linalg.norm(values)
