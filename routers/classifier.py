"""Classifies a request into a task and a tier in well under a millisecond, without an LLM call.

A linear model over hashed word and character n-grams (trained by `routers/train.py` on
`routers/data/train.jsonl`) picks the task; the routing table maps the task to a tier. A decision
less confident than the table's `escalate_below_confidence` goes to the frontier tier.
"""

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from expressway.state import Route
from routers.features import N_FEATURES, featurize
from routers.table import DEFAULT_TABLE, RoutingTableError, Task, load_routing_table

MODEL_PATH = Path(__file__).parent / "model.npz"


@dataclass(frozen=True)
class TaskModel:
    labels: tuple[Task, ...]
    coef: np.ndarray  # (N_FEATURES, tasks)
    intercept: np.ndarray

    def probabilities(self, text: str) -> np.ndarray:
        indices, weights = featurize(text)
        scores = weights @ self.coef[indices] + self.intercept
        exp = np.exp(scores - scores.max())
        return exp / exp.sum()


@lru_cache(maxsize=4)
def load_task_model(path: Path = MODEL_PATH) -> TaskModel:
    try:
        with np.load(path) as saved:
            if int(saved["n_features"]) != N_FEATURES:
                raise ValueError(f"trained with {int(saved['n_features'])} features")
            return TaskModel(tuple(saved["labels"].tolist()), saved["coef"], saved["intercept"])
    except (OSError, KeyError, ValueError) as error:
        raise RoutingTableError(
            f"routing model {path} is unreadable ({error}); rebuild it with `make train-router`"
        ) from error


def classify(text: str, table_path: Path = DEFAULT_TABLE, model_path: Path = MODEL_PATH) -> Route:
    """Label `text` with a task and the tier the routing table gives it."""
    started = time.perf_counter()
    table, model = load_routing_table(table_path), load_task_model(model_path)
    probabilities = model.probabilities(text)
    best = int(probabilities.argmax())
    task, confidence = model.labels[best], float(probabilities[best])
    route = table.tasks[task]
    escalated = confidence < table.escalate_below_confidence and route.tier != "frontier"
    return Route(
        task=task,
        tier="frontier" if escalated else route.tier,
        confidence=round(confidence, 4),
        latency_ms=round((time.perf_counter() - started) * 1000, 4),
        use_tools=route.use_tools,
        max_tokens=route.max_tokens,
        model=route.model,
        escalated=escalated,
        require_tools=route.require_tools,
    )
