"""Classifies a request into a task and a tier in milliseconds, without an LLM call.

Two linear models (trained by `routers/train.py` on `routers/data/train.jsonl`) in a cascade.
The first reads hashed word and character n-grams of the whole request (a fraction of a
millisecond); when it is at least `ngram_confident` sure, as it is for most requests, its label
stands. Otherwise the second reads the same n-grams and a sentence embedding of the request's
instruction from the first layers of a small pretrained encoder (`expressway/encoder.py`), which
carries phrasings the training set never used (milliseconds). The label is the task; the routing
table maps the task to a tier. A decision less confident than the table's
`escalate_below_confidence` goes to the frontier tier.
"""

import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from expressway.encoder import (
    MAX_TOKENS,
    EncoderUnavailableError,
    SentenceEncoder,
    load_encoder,
)
from expressway.state import Route
from routers.features import N_FEATURES, featurize, instruction
from routers.table import DEFAULT_TABLE, RoutingTableError, Task, load_routing_table

MODEL_PATH = Path(__file__).parent / "model.npz"
# Below this confidence a message that follows an earlier request is also read together with it
# (see classify_turn). Chosen on followups_dev.jsonl: 87.9% task accuracy from 0.94 to 0.98 (0.9:
# 85.9%; reading every second turn with its first, 88.9%, one line more for a second decision on
# every turn). Short follow-ups such as "and in Go?" look like lookups ("and in Tokyo?") alone.
FOLLOW_UP_CONFIDENCE = 0.95


@dataclass(frozen=True)
class TaskModel:
    labels: tuple[Task, ...]
    coef: np.ndarray  # (N_FEATURES, tasks): one row gather per n-gram
    embedding_coef: np.ndarray  # (encoder dimension, tasks)
    intercept: np.ndarray
    encoder: SentenceEncoder
    # The n-grams-only model, and the confidence at which its label stands (inf: never, as for
    # a model trained before the cascade existed).
    ngram_coef: np.ndarray | None = None
    ngram_intercept: np.ndarray | None = None
    ngram_confident: float = float("inf")

    def probabilities(self, text: str) -> np.ndarray:
        indices, weights = featurize(text)
        quick = self._confident_ngrams(indices, weights)
        if quick is not None:
            return quick
        return _softmax(
            weights @ self.coef[indices]
            + self.encoder.embed(instruction(text)) @ self.embedding_coef
            + self.intercept
        )

    def skips_encoder(self, text: str) -> bool:
        """Whether the n-grams alone decide `text` (bench/route.py reports the share)."""
        return self._confident_ngrams(*featurize(text)) is not None

    def _confident_ngrams(self, indices: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The n-grams-only model's probabilities when it is sure enough, else None."""
        if self.ngram_coef is None or self.ngram_intercept is None:
            return None
        quick = _softmax(weights @ self.ngram_coef[indices] + self.ngram_intercept)
        return quick if quick.max() >= self.ngram_confident else None


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


@lru_cache(maxsize=4)
def load_task_model(path: Path = MODEL_PATH) -> TaskModel:
    """Read the trained weights and the encoder layers they were trained with."""
    try:
        with np.load(path) as saved:
            if int(saved["n_features"]) != N_FEATURES:
                raise ValueError(f"trained with {int(saved['n_features'])} features")
            labels, coef = tuple(saved["labels"].tolist()), saved["coef"]
            embedding_coef, intercept = saved["embedding_coef"], saved["intercept"]
            layers = int(saved["encoder_layers"])
            # Models trained before the setting existed read the encoder's default.
            tokens = int(saved["encoder_tokens"]) if "encoder_tokens" in saved else MAX_TOKENS
            cascade = (
                {
                    "ngram_coef": saved["ngram_coef"],
                    "ngram_intercept": saved["ngram_intercept"],
                    "ngram_confident": float(saved["ngram_confident"]),
                }
                if "ngram_coef" in saved
                else {}
            )
    except (OSError, KeyError, ValueError) as error:
        raise RoutingTableError(
            f"routing model {path} is unreadable ({error}); rebuild it with `make train-router`"
        ) from error
    try:
        encoder = load_encoder(layers, tokens)
    except EncoderUnavailableError as error:
        raise RoutingTableError(f"routing needs its encoder: {error}") from error
    if embedding_coef.shape[0] != encoder.dimension:
        raise RoutingTableError(
            f"routing model {path} expects {embedding_coef.shape[0]}-value embeddings, the "
            f"encoder gives {encoder.dimension}; rebuild it with `make train-router`"
        )
    return TaskModel(labels, coef, embedding_coef, intercept, encoder, **cascade)


def classify(text: str, table_path: Path = DEFAULT_TABLE, model_path: Path = MODEL_PATH) -> Route:
    """Label `text` with a task and the tier the routing table gives it."""
    table, model = load_routing_table(table_path), load_task_model(model_path)
    started = time.perf_counter()  # the decision's time; loading happens once, at build_graph
    probabilities = model.probabilities(text)
    best = int(probabilities.argmax())
    task, confidence = model.labels[best], float(probabilities[best])
    route, tier = table.tasks[task], table.tier_for(task, confidence)
    return Route(
        task=task,
        tier=tier,
        confidence=round(confidence, 4),
        latency_ms=round((time.perf_counter() - started) * 1000, 4),
        use_tools=route.use_tools,
        max_tokens=route.max_tokens,
        model=route.model,
        escalated=tier != route.tier,
        require_tools=route.require_tools,
        answer_instructions=route.answer_instructions,
    )


def classify_turn(
    text: str,
    previous: str = "",
    table_path: Path = DEFAULT_TABLE,
    model_path: Path = MODEL_PATH,
) -> Route:
    """Label the latest message of a conversation whose previous request was `previous`. A
    follow-up ("and in Berlin?", "now in Rust", "same for March") names its task only together
    with the request before it: when the message alone is labelled less surely than
    FOLLOW_UP_CONFIDENCE, the two are labelled together too, and the surer decision stands."""
    alone = classify(text, table_path, model_path)
    if not previous or alone.confidence >= FOLLOW_UP_CONFIDENCE:
        return alone
    together = classify(f"{previous}\n{text}", table_path, model_path)
    chosen = together if together.confidence > alone.confidence else alone
    return replace(chosen, latency_ms=round(alone.latency_ms + together.latency_ms, 4))
