"""The routing classifier: its API, its quality on held-out requests, its errors, its CLI."""

import json
from pathlib import Path

import pytest

from app.cli import main
from routers import RoutingTableError, classify, load_routing_table
from routers.classifier import load_task_model
from routers.train import load_examples, train

DATA = Path(__file__).resolve().parents[2] / "routers" / "data"


def test_route_has_task_tier_confidence_and_latency() -> None:
    route = classify("Summarize this paragraph in two sentences: the meeting moved to Friday.")
    assert (route.task, route.tier) == ("summarization", "fast")
    assert 0 < route.confidence <= 1 and route.latency_ms > 0
    assert classify("Implement a Python function that parses ISO dates").tier == "frontier"
    assert classify("What time is it in Tokyo?").use_tools


def test_held_out_accuracy_meets_the_goal() -> None:
    """routers/data/eval.jsonl was written separately from the training set and never trained on."""
    table = load_routing_table()
    examples = load_examples(DATA / "eval.jsonl")
    routes = [classify(example["text"]) for example in examples]
    task_accuracy = sum(r.task == e["task"] for r, e in zip(routes, examples, strict=True)) / len(
        examples
    )
    tier_accuracy = sum(
        r.tier == table.tasks[e["task"]].tier for r, e in zip(routes, examples, strict=True)
    ) / len(examples)
    assert task_accuracy >= 0.80 and tier_accuracy >= 0.90


def test_training_and_evaluation_sets_do_not_overlap() -> None:
    train_texts = {e["text"] for e in load_examples(DATA / "train.jsonl")}
    eval_texts = {e["text"] for e in load_examples(DATA / "eval.jsonl")}
    assert len(train_texts) >= 300 and not train_texts & eval_texts


def test_training_produces_a_model_of_the_right_shape() -> None:
    examples = load_examples(DATA / "train.jsonl")[::3]
    weights = train(examples)
    assert weights["coef"].shape == (int(weights["n_features"]), len(weights["labels"]))


def test_low_confidence_escalates_to_frontier(tmp_path) -> None:
    table = (Path(__file__).resolve().parents[2] / "routers" / "routing_table.yaml").read_text()
    strict = tmp_path / "table.yaml"
    strict.write_text(
        table.replace("escalate_below_confidence: 0.3", "escalate_below_confidence: 1.01")
    )
    route = classify("Summarize this paragraph.", table_path=strict)
    assert route.escalated and route.tier == "frontier" and route.task == "summarization"


@pytest.mark.reliability("configuration")
def test_unreadable_table_and_model_name_the_file_and_fix(tmp_path) -> None:
    broken = tmp_path / "table.yaml"
    broken.write_text("tasks: {lookup: {tier: fast}}")
    with pytest.raises(RoutingTableError, match=str(broken)):
        classify("hello", table_path=broken)
    missing = tmp_path / "model.npz"
    with pytest.raises(RoutingTableError, match="make train-router"):
        load_task_model(missing)


def test_route_cli_reads_json_lines(tmp_path, capsys) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        '{"text": "What time is it in Lagos?"}\n{"text": "Write a Go web server"}\n'
    )
    assert main(["route", "--file", str(requests), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["task"] for line in lines] == ["lookup", "code"]
    assert {"task", "tier", "confidence", "latency_ms"} <= set(lines[0])
