"""A tier added by editing the routing table alone: checked at load, routed to, served."""

import functools
from pathlib import Path

import pytest
import yaml

import routers.route_request
from bench.scripted_model import ScriptedChatModel
from expressway import context as context_module
from expressway.context import ConfigurationError, Context
from expressway.events import iter_events
from expressway.models import tier_model, unreachable
from graphs.agent import build_graph
from routers import RoutingTableError, classify, classify_turn, load_routing_table
from routers.table import DEFAULT_TABLE

CODE_REQUEST = "Implement a Python function that parses ISO dates"


@pytest.fixture(autouse=True)
def restore_added_tiers(monkeypatch):
    monkeypatch.setattr(context_module, "ADDED_TIERS", dict(context_module.ADDED_TIERS))
    import routers.table

    monkeypatch.setattr(routers.table, "ADDED_TIERS", context_module.ADDED_TIERS)


def _table(tmp_path: Path, tiers: object, code_tier: str = "coder") -> Path:
    table = yaml.safe_load(DEFAULT_TABLE.read_text())
    table["tasks"]["code"]["tier"] = code_tier
    table["tiers"] = tiers
    path = tmp_path / f"table-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(table))
    return path


def test_an_added_tier_is_routed_to_and_reached_at_its_own_endpoint(tmp_path, monkeypatch) -> None:
    path = _table(
        tmp_path,
        {
            "coder": {
                "model": "qwen-coder",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "CODER_API_KEY",
            }
        },
    )
    table = load_routing_table(path)
    assert table.tiers["coder"].model == "qwen-coder"
    assert classify(CODE_REQUEST, table_path=path).tier == "coder"

    monkeypatch.setenv("CODER_API_KEY", "sk-coder")
    context = Context(force_tier="coder")  # a forced tier may name it too
    model = tier_model(context, "coder")
    assert (str(model.openai_api_base), model.model_name) == ("http://127.0.0.1:9/v1", "qwen-coder")
    assert model.openai_api_key.get_secret_value() == "sk-coder"
    assert context.model_name("coder") == "qwen-coder"
    message = str(unreachable(context, "coder"))
    assert "http://127.0.0.1:9/v1" in message and "tier 'coder' in the routing table" in message


def test_an_added_tier_without_a_url_uses_the_embedded_server(tmp_path) -> None:
    load_routing_table(_table(tmp_path, {"local": {"model": "smollm2"}}, code_tier="local"))
    context = Context(embedded_port=8123)
    assert context.uses_embedded("local")
    assert context.base_url("local") == "http://127.0.0.1:8123/v1"
    assert tier_model(context, "local").model_name == "smollm2"


async def test_the_graph_answers_on_the_added_tier(tmp_path, monkeypatch) -> None:
    path = _table(tmp_path, {"coder": {"model": "qwen-coder"}})
    monkeypatch.setattr(
        routers.route_request, "classify_turn", functools.partial(classify_turn, table_path=path)
    )
    coder = ScriptedChatModel(answer="def parse(text): ...")
    fast = ScriptedChatModel(answer="wrong tier")
    graph = build_graph(models={"coder": coder, "fast": fast, "frontier": fast})
    stream = graph.astream(
        {"messages": [("user", CODE_REQUEST)]}, context=Context(), stream_mode=["custom"]
    )
    events = [event async for event in iter_events(stream)]
    tokens = [event for event in events if event["type"] == "token"]
    assert {(event["tier"], event["model"]) for event in tokens} == {("coder", "qwen-coder")}
    assert "".join(event["text"] for event in tokens) == coder.answer


@pytest.mark.reliability("configuration")
@pytest.mark.parametrize(
    ("tiers", "code_tier", "message"),
    [
        ({"fast": {"model": "x"}}, "fast", "is built in: set it with EXPRESSWAY_FAST_BASE_URL"),
        ({"Coder!": {"model": "x"}}, "fast", "lower-case letters"),
        ({"coder": {"base_url": "http://h/v1"}}, "coder", "needs `model:`"),
        ({"coder": {"model": "x", "base_url": "gpu:8000"}}, "coder", "must start with http"),
        ({"coder": {"model": "x", "api_key": "sk-1"}}, "coder", "must be {model: NAME"),
        ({"coder": {"model": "x", "api_key_env": "sk 1"}}, "coder", "environment variable"),
        ({"coder": {"model": "x"}}, "coders", "task 'code' has tier 'coders'; the tiers are"),
        (["coder"], "fast", "`tiers:` must map tier names"),
    ],
)
def test_a_wrong_tier_entry_fails_at_load_naming_it(tmp_path, tiers, code_tier, message) -> None:
    path = _table(tmp_path, tiers, code_tier)
    with pytest.raises(RoutingTableError, match=message.replace("{", r"\{")) as error:
        load_routing_table(path)
    assert str(path) in str(error.value)


@pytest.mark.reliability("configuration")
def test_an_unknown_tier_is_refused_by_name() -> None:
    wrong = r"EXPRESSWAY_FORCE_TIER \(or `ask --tier`\)='coder'"
    with pytest.raises(ConfigurationError, match=wrong):
        Context(force_tier="coder")
    with pytest.raises(ConfigurationError, match=r"unknown tier 'coder'.*`tiers:` section"):
        Context().model_name("coder")
