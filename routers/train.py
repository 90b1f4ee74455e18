"""Trains the routing classifier from routers/data/train.jsonl and writes routers/model.npz.

Run `python -m routers.train` (or `make train-router`) after editing the training data. Needs the
`dev` extra (scikit-learn); routing itself only needs numpy.
"""

import json
import time
from pathlib import Path

import numpy as np

from routers.features import N_FEATURES, featurize

DATA_DIR = Path(__file__).parent / "data"
MODEL_PATH = Path(__file__).parent / "model.npz"
REGULARIZATION_C = 10.0


def load_examples(path: Path) -> list[dict[str, str]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def feature_matrix(texts: list[str]):  # -> scipy.sparse.csr_matrix
    from scipy.sparse import csr_matrix

    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        indices, weights = featurize(text)
        rows += [row] * len(indices)
        cols += indices.tolist()
        values += weights.tolist()
    return csr_matrix((values, (rows, cols)), shape=(len(texts), N_FEATURES), dtype=np.float32)


def train(examples: list[dict[str, str]]) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    labels = sorted({example["task"] for example in examples})
    model = LogisticRegression(C=REGULARIZATION_C, max_iter=2000)
    model.fit(feature_matrix([e["text"] for e in examples]), [e["task"] for e in examples])
    assert list(model.classes_) == labels
    return {
        "labels": np.array(labels),
        "coef": model.coef_.T.astype(np.float32),  # (N_FEATURES, tasks): one row gather per feature
        "intercept": model.intercept_.astype(np.float32),
        "n_features": np.array(N_FEATURES),
    }


def cross_validated_accuracy(examples: list[dict[str, str]], folds: int = 5) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    model = LogisticRegression(C=REGULARIZATION_C, max_iter=2000)
    features = feature_matrix([e["text"] for e in examples])
    return float(cross_val_score(model, features, [e["task"] for e in examples], cv=folds).mean())


def main() -> None:
    started = time.perf_counter()
    examples = load_examples(DATA_DIR / "train.jsonl")
    weights = train(examples)
    np.savez_compressed(MODEL_PATH, **weights)
    cv = cross_validated_accuracy(examples)
    print(
        json.dumps(
            {
                "examples": len(examples),
                "cross_validated_task_accuracy": round(cv, 4),
                "seconds": round(time.perf_counter() - started, 2),
                "model": str(
                    MODEL_PATH.relative_to(Path.cwd())
                    if MODEL_PATH.is_relative_to(Path.cwd())
                    else MODEL_PATH
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
