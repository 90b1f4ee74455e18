"""Routing benchmark: the classifier's accuracy on each held-out set, the quality/cost curve of its
escalation threshold, and its decision latency."""

import json
import math
import statistics
from pathlib import Path
from typing import Any

from bench.harness import percentile
from bench.tool_choice import DATA as UNSEEN_TOOLS
from bench.tool_choice import HELD_OUT as UNSEEN_TOOLS_HELD_OUT
from routers.calibration import Decision, threshold_curve
from routers.classifier import classify, classify_turn, load_task_model
from routers.table import RoutingTable, load_routing_table

DATA = Path(__file__).resolve().parents[1] / "routers" / "data"
# eval.jsonl: written with the training set; eval_b.jsonl to eval_e.jsonl: by four other authors,
# each in another style (eval_c: six tasks, no chat, written to mislead by topic; eval_d and
# eval_e: all eight tasks, eval_e written while the last training data was, nothing chosen on it).
# eval_followups.jsonl: second turns with the request before them (`previous`), by a sixth author;
# FOLLOW_UP_CONFIDENCE was chosen on the other half of its lines (followups_dev.jsonl).
# eval_actions.jsonl: commands to act through a connected system and their look-alikes (seventh).
EVAL_NAMES = ("eval", "eval_b", "eval_c", "eval_d", "eval_e", "eval_followups", "eval_actions")
EVAL_PATHS = tuple(DATA / f"{name}.jsonl" for name in EVAL_NAMES)


def measure(examples: list[dict[str, str]], table: RoutingTable) -> dict[str, Any]:
    labels = sorted(table.tasks)
    confusion = {truth: dict.fromkeys(labels, 0) for truth in labels}
    decisions, task_hits, tier_hits, escalated, to_frontier = [], 0, 0, 0, 0
    model = load_task_model()
    for example in examples:
        route = classify_turn(example["text"], example.get("previous", ""))
        confusion[example["task"]][route.task] += 1
        decisions.append(Decision(example["task"], route.task, route.confidence))
        task_hits += route.task == example["task"]
        tier_hits += route.tier == table.tasks[example["task"]].tier
        escalated += route.escalated
        to_frontier += route.tier == "frontier"
    return {
        "examples": len(examples),
        "task_accuracy": round(task_hits / len(examples), 4),
        "tier_accuracy": round(tier_hits / len(examples), 4),
        "escalated": escalated,
        "share_to_frontier": round(to_frontier / len(examples), 4),
        # Decided by the n-grams alone, without the encoder (routers/classifier.py's cascade).
        "share_without_encoder": round(
            sum(model.skips_encoder(example["text"]) for example in examples) / len(examples), 4
        ),
        "confusion": confusion,  # confusion[true task][predicted task]
        "threshold_curve": threshold_curve(decisions, table),
    }


def tool_questions_routed(path: Path) -> dict[str, Any]:
    """Where the questions another author wrote for tools we did not write (bench/tool_choice.py)
    go: each needs a tool, so a route that plans none (use_tools false) cannot answer it."""
    questions = [q["text"] for tools in json.loads(path.read_text()) for q in tools["questions"]]
    routes = [(text, classify(text)) for text in questions]
    missed = [{"text": text, "task": route.task} for text, route in routes if not route.use_tools]
    return {
        "file": f"bench/data/{path.name}",
        "questions": len(questions),
        "to_a_tools_route": len(questions) - len(missed),
        "missed": missed,
    }


def run(paths: list[Path], repeats: int) -> dict[str, Any]:
    table = load_routing_table()
    sets = {path.stem: _examples(path) for path in paths}
    reports = {name: measure(examples, table) for name, examples in sets.items()}
    texts = [example["text"] for examples in sets.values() for example in examples]
    classify(texts[0])  # the model and encoder are loaded; time only decisions
    # Every decision embeds its text afresh: the encoder's memory of recent texts (which lets a
    # caller with the same encoder setting reuse an embedding) would otherwise time cache hits.
    model = load_task_model()
    encoder = model.encoder
    latencies = []
    for _ in range(repeats):
        for text in texts:
            encoder.forget()
            latencies.append(classify(text).latency_ms)
    first = reports[paths[0].stem]
    confident = model.ngram_confident
    return {
        "benchmark": "route",
        "schema_version": 1,
        # The first set's figures at the top level, as before; every set's under "sets".
        **{key: first[key] for key in ("examples", "task_accuracy", "tier_accuracy", "escalated")},
        "share_to_frontier": first["share_to_frontier"],
        "escalate_below_confidence": table.escalate_below_confidence,
        "encoder_layers": len(encoder.layers),
        # null: a model trained before the cascade (every decision runs the encoder)
        "ngram_confident": confident if math.isfinite(confident) else None,
        "latency_p50_ms": round(percentile(latencies, 50), 4),
        "latency_p99_ms": round(percentile(latencies, 99), 4),
        "latency_mean_ms": round(statistics.fmean(latencies), 4),
        "decisions_timed": len(latencies),
        "confusion": first["confusion"],
        "sets": reports,
        "tool_questions": tool_questions_routed(UNSEEN_TOOLS),
        # A second author's tool sets, written after the router learnt tool commands.
        "tool_questions_held_out": tool_questions_routed(UNSEEN_TOOLS_HELD_OUT),
    }


def _examples(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench route")
    parser.add_argument(
        "--file",
        type=Path,
        action="append",
        help="JSON lines with text, task; repeat for several sets (default: every eval*.jsonl set)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the files")
    args = parser.parse_args(argv)
    return run(args.file or list(EVAL_PATHS), args.repeats)
