"""Tool-choice benchmark: how well the planner's tool ranking (nodes/tool_choice.py) picks the tools
a question needs, on tool sets nobody wrote the planner for.

`bench/data/unseen_tools.json` holds three tool sets (a hospital scheduler, cloud operations, farm
sensors; 8 tools each, some nearly alike) and 20 questions per set labelled with the tools they
need, written by a helper that saw no file of this project. Per encoder depth it reports the share
of questions whose best-ranked tool is a needed one (`top1`), the share whose fitting tools (the
ones named under the question) include every needed tool (`needed_in_fitting`), how many tools
fit on average, and the encoder's time per question: embedded alone (p50), and per question when
the same questions are embedded BATCH_TEXTS to a pass, as the questions of concurrent runs are.
"""

import json
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from bench.harness import percentile
from expressway.encoder import SentenceEncoder, load_encoder
from nodes.tool_choice import ENCODER_LAYERS, ENCODER_TOKENS, tool_catalog

DATA = Path(__file__).resolve().parent / "data" / "unseen_tools.json"
# Four more tool sets (a marina, a seed bank, a ski resort, a bike share; 7-9 tools each) and 80
# questions by another helper, written after the encoder depth and the ranking were chosen on
# DATA: nothing was chosen on it (`--file bench/data/unseen_tools_b.json`).
HELD_OUT = DATA.parent / "unseen_tools_b.json"


def _tool(spec: dict[str, Any]) -> BaseTool:
    """A tool with the set's name, description and JSON schema (never called here)."""

    def unused(**_: Any) -> str:
        return ""

    return StructuredTool(
        name=spec["name"], description=spec["description"], args_schema=spec["parameters"],
        func=unused,
    )  # fmt: skip


def load_sets(path: Path = DATA) -> list[tuple[str, list[BaseTool], list[dict[str, Any]]]]:
    """(domain, tools, questions) per tool set."""
    return [
        (entry["domain"], [_tool(spec) for spec in entry["tools"]], entry["questions"])
        for entry in json.loads(path.read_text())
    ]


def measure(sets: list[tuple[str, list[BaseTool], list[dict[str, Any]]]], layers: int) -> dict:
    """The ranking's figures at `layers` encoder layers, overall and per set."""
    encoder = load_encoder(layers, ENCODER_TOKENS)
    per_set, times_ms, fitting_sizes = {}, [], []
    for domain, tools, questions in sets:
        catalog = tool_catalog(tools, layers)
        top1 = complete = 0
        for question in questions:
            encoder.forget()  # time the work, not the memory of an earlier pass
            started = time.perf_counter()
            ranked = catalog.rank(question["text"])
            times_ms.append((time.perf_counter() - started) * 1000)
            fitting = {tool.name for tool in catalog.fitting(question["text"])}
            needed = set(question["tools"])
            top1 += ranked[0][0].name in needed
            complete += needed <= fitting
            fitting_sizes.append(len(fitting))
        per_set[domain] = {"questions": len(questions), "top1": top1, "needed_in_fitting": complete}
    total = sum(entry["questions"] for entry in per_set.values())
    return {
        "layers": layers,
        "questions": total,
        "top1": round(sum(entry["top1"] for entry in per_set.values()) / total, 4),
        "needed_in_fitting": round(
            sum(entry["needed_in_fitting"] for entry in per_set.values()) / total, 4
        ),
        "mean_fitting_tools": round(statistics.fmean(fitting_sizes), 2),
        "encoder_ms_p50": round(percentile(times_ms, 50), 3),
        "encoder_ms_per_question_in_passes": round(_in_passes_ms(encoder, sets), 3),
        "sets": per_set,
    }


def _in_passes_ms(
    encoder: SentenceEncoder, sets: list[tuple[str, list[BaseTool], list[dict]]]
) -> float:
    """Milliseconds per question with the questions embedded BATCH_TEXTS to a pass."""
    texts = [question["text"] for _, _, questions in sets for question in questions]
    encoder.forget()
    started = time.perf_counter()
    encoder.embed_many(texts)
    return (time.perf_counter() - started) * 1000 / len(texts)


def run(path: Path, depths: list[int]) -> dict[str, Any]:
    sets = load_sets(path)
    return {
        "benchmark": "tool_choice",
        "schema_version": 1,
        "file": path.name,
        "shipped_layers": ENCODER_LAYERS,
        "by_layers": [measure(sets, layers) for layers in depths],
    }


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="expressway bench tool_choice")
    parser.add_argument("--file", type=Path, default=DATA, help="tool sets with labelled questions")
    parser.add_argument(
        "--layers", default="1,2,3,4,5,6", help="comma-separated encoder depths to compare"
    )
    args = parser.parse_args(argv)
    return run(args.file, [int(layers) for layers in args.layers.split(",") if layers])
