"""Routing benchmark: the classifier's accuracy on the held-out evaluation set and its latency."""

import json
import statistics
from pathlib import Path
from typing import Any

from bench.harness import percentile
from routers.classifier import classify
from routers.table import load_routing_table

EVAL_PATH = Path(__file__).resolve().parents[1] / "routers" / "data" / "eval.jsonl"


def run(path: Path, repeats: int) -> dict[str, Any]:
    examples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = load_routing_table()
    labels = sorted(table.tasks)
    confusion = {truth: dict.fromkeys(labels, 0) for truth in labels}
    task_hits = tier_hits = escalated = 0
    for example in examples:
        route = classify(example["text"])
        confusion[example["task"]][route.task] += 1
        task_hits += route.task == example["task"]
        tier_hits += route.tier == table.tasks[example["task"]].tier
        escalated += route.escalated
    classify(examples[0]["text"])  # the model is loaded; time only decisions
    latencies = [classify(e["text"]).latency_ms for _ in range(repeats) for e in examples]
    return {
        "benchmark": "route",
        "schema_version": 1,
        "examples": len(examples),
        "task_accuracy": round(task_hits / len(examples), 4),
        "tier_accuracy": round(tier_hits / len(examples), 4),
        "escalated": escalated,
        "latency_p50_ms": round(percentile(latencies, 50), 4),
        "latency_p99_ms": round(percentile(latencies, 99), 4),
        "latency_mean_ms": round(statistics.fmean(latencies), 4),
        "decisions_timed": len(latencies),
        "confusion": confusion,  # confusion[true task][predicted task]
    }


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench route")
    parser.add_argument("--file", type=Path, default=EVAL_PATH, help="JSON lines with text, task")
    parser.add_argument("--repeats", type=int, default=20, help="timed passes over the file")
    args = parser.parse_args(argv)
    return run(args.file, args.repeats)
