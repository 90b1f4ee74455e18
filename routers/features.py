"""Turns a request into hashed n-gram features, the same way for training and for routing."""

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
