"""Which tools fit a question, and the example plans the planner is shown for it.

Planning must not depend on hand-written examples of the user's tools. So the planner is shown,
for each question, the hand-written example plans most similar to it that use only the graph's
tools (the demo tools have them); failing those, an example of the tools that fit the question
best (ranked by a sentence encoder: question vs. each tool's name, description and arguments):
the example its author attached (`expressway.toolbox.example`) or one derived from the tool's
own description and argument schema. The best-fitting tools are also named under the question.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from langchain_core.tools import BaseTool
from rank_bm25 import BM25Okapi

from expressway.context import ENCODER_DEPTH
from expressway.encoder import MAX_TOKENS, load_encoder
from expressway.toolbox import tool_examples, tool_parameters
from nodes.prompts import PLAN_EXAMPLES

Steps = list[tuple[str, dict[str, Any]]]
_WORD = re.compile(r"\w+")
# "e.g. LH400", "like EUR, USD", "(P-123)": values a description offers as examples. A single
# quote opens only after a non-word character, so "today's status" quotes nothing.
_OFFERED_VALUE = re.compile(
    r"(?:e\.g\.|for example|such as|like)\s*:?\s*([\w/:+@-]+(?:[.,]\s*[\w/:+@-]+)*)"
    r"|\(([\w/:+@ -]{1,24})\)|(?<!\w)'([^']{1,40})'|\"([^\"]{1,40})\""
)
# Names and codes in a question: a quoted text, a run of capitalized words, or a word with a digit.
_ENTITY = re.compile(
    r"\"([^\"]{1,40})\"|(?<!\w)'([^']{1,40})'|(\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*|\b\w*\d[\w-]*)"
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+)$")
# A tool fits when its score is within this much of the best one's (cosine similarity).
FIT_MARGIN = 0.15
# All 6 layers over the encoder's token cap (64): on three tool sets written by someone else, with
# near-duplicate tools and paraphrased questions (`expressway bench tool_choice`), the best tool
# was the one needed for 67% of the questions with 6 layers and 33% with 3, and the fitting tools
# named every needed one for 82% vs 62%. A question's later parts name tools too. The router's
# encoder stage is another setting (3 layers, 24 tokens), so it never shares these embeddings.
ENCODER_LAYERS, ENCODER_TOKENS = ENCODER_DEPTH, MAX_TOKENS


def encode(text: str, layers: int = ENCODER_LAYERS) -> np.ndarray:
    """A question's or a tool's embedding (unit length) after `layers` encoder layers."""
    return load_encoder(layers, ENCODER_TOKENS).embed(text)


async def embed_question(question: str, layers: int = ENCODER_LAYERS) -> None:
    """Embed a question for the tool ranking ahead of `planner_messages`, in one encoder pass with
    the questions other runs ask for meanwhile (the encoder keeps it for the ranking to find)."""
    await load_encoder(layers, ENCODER_TOKENS).aembed(question)


def tool_text(tool: BaseTool, parameters: dict[str, Any]) -> str:
    """What the encoder compares a question with: the name, description and argument names."""
    names = " ".join(parameters.get("properties", {})).replace("_", " ")
    return f"{tool.name.replace('_', ' ')}: {' '.join(tool.description.split())} ({names})"


def _offered_values(description: str) -> list[str]:
    values = []
    for match in _OFFERED_VALUE.finditer(description):
        text = next(group for group in match.groups() if group)
        values += [value.strip(" .") for value in re.split(r",\s*", text) if value.strip(" .")]
    return values


def question_entities(question: str) -> list[str]:
    """The names and codes a question mentions, in order: quoted texts, runs of capitalized
    words (less a sentence's capitalized first word) and words with a digit."""
    entities: list[str] = []
    for match in _ENTITY.finditer(question):
        text = next(group for group in match.groups() if group)
        if match.group(3) and _SENTENCE_START.search(question[: match.start()]):
            first, _, rest = text.partition(" ")
            text = text if any(char.isdigit() for char in first) else rest
        # A bare number is a quantity, not a name.
        if text and text != "I" and not text.isdigit() and text not in entities:
            entities.append(text)
    return entities


def example_arguments(
    parameters: dict[str, Any], description: str, entities: Sequence[str] = ()
) -> dict[str, Any]:
    """Arguments for a derived example: the schema's own examples, choices or defaults, values
    the description offers ("e.g. LH400"), else a plain value of the right type; a text the
    description offers no value for takes the next name or code the question mentions (given
    only the argument's name as its value, a small model copies the name)."""
    offered = _offered_values(description)
    mentioned = list(entities)
    arguments: dict[str, Any] = {}
    for name in parameters.get("required", []):
        spec = parameters["properties"][name]
        kind = spec.get("type")
        if spec.get("examples"):
            arguments[name] = spec["examples"][0]
        elif "enum" in spec:
            arguments[name] = spec["enum"][0]
        elif "default" in spec:
            arguments[name] = spec["default"]
        elif kind == "integer":
            arguments[name] = 3
        elif kind == "number":
            arguments[name] = 2.5
        elif kind == "boolean":
            arguments[name] = True
        elif offered:
            arguments[name] = offered.pop(0)
        elif mentioned:
            arguments[name] = mentioned.pop(0)
        else:
            arguments[name] = name.replace("_", " ")
    return arguments


def derived_example(
    tool: BaseTool, parameters: dict[str, Any], entities: Sequence[str] = ()
) -> tuple[str, Steps]:
    """A question made of the tool's description and its example values, and the one-step plan
    that answers it."""
    arguments = example_arguments(parameters, tool.description, entities)
    summary = re.split(r"(?<=[.!?])\s", " ".join(tool.description.split()))[0].rstrip(".")
    values = ", ".join(str(value) for value in arguments.values())
    return (f"{summary}: {values}?" if values else f"{summary}?"), [(tool.name, arguments)]


@dataclass(frozen=True)
class ToolCatalog:
    """The graph's tools with their encoder embeddings, built once per tool set."""

    tools: tuple[BaseTool, ...]
    parameters: tuple[dict[str, Any], ...]
    embeddings: np.ndarray  # one unit row per tool
    layers: int = ENCODER_LAYERS

    def rank(self, question: str) -> list[tuple[BaseTool, float]]:
        """Tools by how well their description fits the question, best first."""
        scores = self.embeddings @ encode(question, self.layers)
        order = np.argsort(-scores, kind="stable")
        return [(self.tools[i], float(scores[i])) for i in order]

    def fitting(self, question: str, most: int = 3) -> list[BaseTool]:
        """The tools scoring within FIT_MARGIN of the best (at most `most`), best first."""
        ranked = self.rank(question)
        if not ranked:
            return []
        best = ranked[0][1]
        return [tool for tool, score in ranked[:most] if score >= best - FIT_MARGIN]

    def examples(
        self, question: str, fitting: Sequence[BaseTool], count: int = 2
    ) -> list[tuple[str, Steps]]:
        """(question, steps) examples, most relevant last: up to `count` hand-written plans similar
        to the question; failing those, one example of the best-fitting tool, or of the two best
        together when two fit (a small model plans as many steps as its example shows)."""
        chosen = similar_examples(question, {tool.name for tool in self.tools}, count)
        if chosen or not fitting:
            return chosen
        entities = question_entities(question)
        examples = [self.example_of(tool, entities) for tool in fitting[:2]]
        if len(examples) == 1:
            return examples
        (first_question, first_steps), (second_question, second_steps) = examples
        joined = (
            f"{first_question.rstrip('?.')}, and {second_question[0].lower()}{second_question[1:]}"
        )
        return [(joined, first_steps + second_steps)]

    def example_of(self, tool: BaseTool, entities: Sequence[str] = ()) -> tuple[str, Steps]:
        """The example its author attached to the tool, else one derived from its schema (texts
        it offers no value for filled with `entities`, the question's names and codes)."""
        given = tool_examples(tool)
        if given:
            return given[0][0], [(tool.name, given[0][1])]
        return derived_example(tool, self.parameters[self.tools.index(tool)], entities)


@lru_cache(maxsize=1)
def _example_index() -> BM25Okapi:
    return BM25Okapi([_WORD.findall(question.lower()) for question, _ in PLAN_EXAMPLES])


def similar_examples(question: str, tool_names: set[str], count: int) -> list[tuple[str, Steps]]:
    """The hand-written example plans most similar to `question` (sharing words with it) that use
    only the available tools, most similar last (small models lean on the nearest example)."""
    scores = _example_index().get_scores(_WORD.findall(question.lower()))
    ranked = sorted(range(len(PLAN_EXAMPLES)), key=lambda i: scores[i], reverse=True)
    usable = [
        PLAN_EXAMPLES[i]
        for i in ranked
        if scores[i] > 0 and {tool for tool, _ in PLAN_EXAMPLES[i][1]} <= tool_names
    ]
    return list(reversed(usable[:count]))


_CATALOGS: dict[tuple[str, int], ToolCatalog] = {}


def tool_catalog(tools: Sequence[BaseTool], layers: int = ENCODER_LAYERS) -> ToolCatalog:
    """The catalog of `tools`, embedded once per tool set and reused for every question."""
    key = (json.dumps([[tool.name, tool.description] for tool in tools]), layers)
    if key not in _CATALOGS:
        parameters = tuple(tool_parameters(tool) for tool in tools)
        texts = [tool_text(tool, schema) for tool, schema in zip(tools, parameters, strict=True)]
        encoder = load_encoder(layers, ENCODER_TOKENS)
        embeddings = np.array(encoder.embed_many(texts), np.float32)
        _CATALOGS[key] = ToolCatalog(
            tuple(tools), parameters, embeddings.reshape(-1, encoder.dimension), layers
        )
    return _CATALOGS[key]
