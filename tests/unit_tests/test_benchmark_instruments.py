"""The simulated backend keeps its timing promises, and the naive baseline is a correct agent."""

import asyncio
import json
import time
from itertools import pairwise

import httpx
import pytest
from langchain_openai import ChatOpenAI

from bench.naive_agent import run_naive_agent
from bench.simulator import (
    TOKEN,
    FixedResponder,
    LatencyProfile,
    RunningSimulator,
    SimulatedBackend,
    ToolCallReply,
)
from bench.workload import QUESTIONS, scripted_reply, workload_tools


def _stream_arrivals(base_url: str, model: str = "fast", content: str = "hi") -> list[float]:
    started = time.monotonic()
    arrivals = []
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": content}]}
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=30) as response:
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                arrivals.append(time.monotonic() - started)
    return arrivals


def test_simulator_honours_ttft_and_inter_token_latency() -> None:
    profile = LatencyProfile(ttft_s=0.2, tokens_per_s=50, prefill_tokens_per_s=1e9)
    backend = SimulatedBackend(FixedResponder(answer_tokens=10), profile)
    with RunningSimulator(backend) as simulator:
        arrivals = _stream_arrivals(simulator.base_url)
    assert arrivals[0] >= 0.2
    # The server's own send times: a loaded client may read chunks in bursts, the server never
    # sends them faster than its decode speed (less the jitter of one socket write).
    sent = [chunk.sent_at for chunk in backend.stats.chunks]
    assert min(later - earlier for earlier, later in pairwise(sent)) >= 0.9 / 50
    assert len(arrivals) > 10


def test_simulator_groups_tokens_per_request_as_vllms_stream_interval() -> None:
    """vLLM's per-request `stream_interval` N: the first token at once, then N per chunk, the
    rest at the end; text and tool-call arguments arrive whole either way."""
    backend = SimulatedBackend(FixedResponder(answer_tokens=10), LatencyProfile(ttft_s=0.0))

    def contents(**extra: object) -> list[str]:
        body = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream(
            "POST", f"{simulator.base_url}/chat/completions", json={**body, **extra}, timeout=30
        ) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
        deltas = [json.loads(event)["choices"][0]["delta"] for event in events]
        return [delta["content"] for delta in deltas if delta.get("content")]

    with RunningSimulator(backend) as simulator:
        each = contents()
        grouped = contents(stream_interval=4)
        models = httpx.get(f"{simulator.base_url}/models", timeout=30).json()["data"]
    tokens = TOKEN.findall(FixedResponder(answer_tokens=10)({}))
    assert each == tokens
    assert "".join(grouped) == "".join(tokens)
    sizes = [len(TOKEN.findall(chunk)) for chunk in grouped]
    assert sizes[0] == 1 and set(sizes[1:-1]) == {4} and 1 <= sizes[-1] <= 4
    # It lists its models as vLLM does, so a client sends it vLLM's request fields.
    assert {model["owned_by"] for model in models} == {"vllm"}


def test_simulator_groups_never_join_two_tool_calls_arguments() -> None:
    calls = [ToolCallReply("clock", {"tz": "Asia/Tokyo"}), ToolCallReply("clock", {"tz": "UTC"})]
    with RunningSimulator(SimulatedBackend(lambda _: calls, LatencyProfile(ttft_s=0.0))) as sim:
        body = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream(
            "POST",
            f"{sim.base_url}/chat/completions",
            json={**body, "stream_interval": 3},
            timeout=30,
        ) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
    arguments: dict[int, str] = {}
    for event in events:
        for call in json.loads(event)["choices"][0]["delta"].get("tool_calls", []):
            piece = call["function"]["arguments"]
            arguments[call["index"]] = arguments.get(call["index"], "") + piece
            assert len(TOKEN.findall(piece)) <= 3
    assert [json.loads(text) for _, text in sorted(arguments.items())] == [
        {"tz": "Asia/Tokyo"},
        {"tz": "UTC"},
    ]


def test_simulator_prefix_cache_reuses_the_blocks_a_longer_prompt_shares() -> None:
    backend = SimulatedBackend(profile=LatencyProfile(prefill_tokens_per_s=1000))

    def request(*contents: str) -> dict:
        return {"model": "fast", "messages": [{"role": "user", "content": c} for c in contents]}

    question = "What is the status of orders 1002 and 1007, and when were they placed? " * 4
    cold = backend.prefill_s(request(question))
    assert backend.stats.cached_prompt_tokens == 0
    # The same beginning inside a longer last message (an answer prompt with tool results added):
    # every full block before the first difference is reused, as in vLLM.
    warm = backend.prefill_s(request(question + "Tool results: order 1002 shipped."))
    assert 0 < backend.stats.cached_prompt_tokens <= len(question) // 4
    assert warm < cold / 2
    # A different beginning shares nothing.
    before = backend.stats.cached_prompt_tokens
    backend.prefill_s(request("Other question. " + question))
    assert backend.stats.cached_prompt_tokens == before


def test_simulator_caches_a_prompt_only_once_its_prefill_is_done() -> None:
    backend = SimulatedBackend(
        FixedResponder(answer_tokens=1), LatencyProfile(ttft_s=0.5, prefill_tokens_per_s=1e9)
    )
    prompt = "Tool results follow for the order status question asked above. " * 8
    body = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    with RunningSimulator(backend) as simulator:
        url = f"{simulator.base_url}/chat/completions"
        # Closed before its first token (an aborted warm-up): nothing of it is cached.
        with httpx.stream("POST", url, json=body, timeout=5):
            pass
        time.sleep(0.5)
        _stream_arrivals(simulator.base_url, content=prompt)
        assert backend.stats.cached_prompt_tokens == 0
        _stream_arrivals(simulator.base_url, content=prompt)
        assert backend.stats.cached_prompt_tokens > 0


def test_simulator_uses_the_profile_of_the_requested_model() -> None:
    slow, quick = LatencyProfile(ttft_s=1.0), LatencyProfile(ttft_s=0.0)
    backend = SimulatedBackend(
        FixedResponder(answer_tokens=1), slow, model_profiles={"fast": quick}
    )
    with RunningSimulator(backend) as simulator:
        fast = _stream_arrivals(simulator.base_url, model="fast")[0]
        frontier = _stream_arrivals(simulator.base_url, model="frontier")[0]
    assert frontier >= 1.0 and fast < frontier  # a sleep is never shorter; the fast one has none


def test_naive_agent_calls_tools_one_per_turn_in_order_with_real_results() -> None:
    question = QUESTIONS[0]  # two price lookups, then a calculator over both results
    profile = LatencyProfile(ttft_s=0.0, tokens_per_s=10_000)
    with RunningSimulator(SimulatedBackend(scripted_reply, profile)) as simulator:
        model = ChatOpenAI(base_url=simulator.base_url, api_key="none", model="frontier")
        run = asyncio.run(run_naive_agent(question.text, model, workload_tools(0.0, 0.0)))
    assert [call["tool"] for call in run.tool_calls] == ["sql_query", "sql_query", "calculator"]
    assert run.tool_calls[2]["args"] == {"expression": "349.0 - 149.5"}
    assert run.tool_calls[2]["output"] == "199.5"
    assert run.turns == 4 and run.answer == question.answer


def test_every_workload_plan_is_valid_for_the_real_tools() -> None:
    from expressway.toolbox import as_tools
    from nodes.planner import PlanValidator, TaskStreamParser

    tools = {tool.name: tool for tool in as_tools(workload_tools(0.0, 0.0))}
    for question in QUESTIONS:
        validator = PlanValidator(tools=tools, max_tasks=16)
        parser = TaskStreamParser()
        steps = parser.feed(question.plan_json())
        parser.finish()
        assert [validator.check(step).tool for step in steps] == [c[0] for c in question.calls]
    assert len(QUESTIONS) >= 20


def test_naive_agent_answers_when_its_turn_budget_is_spent() -> None:
    question = QUESTIONS[0]  # needs three tool calls
    profile = LatencyProfile(ttft_s=0.0, tokens_per_s=10_000)
    with RunningSimulator(SimulatedBackend(scripted_reply, profile)) as simulator:
        model = ChatOpenAI(base_url=simulator.base_url, api_key="none", model="frontier")
        run = asyncio.run(
            run_naive_agent(question.text, model, workload_tools(0.0, 0.0), max_turns=2)
        )
    assert [call["tool"] for call in run.tool_calls] == ["sql_query"]
    assert run.turns == 2 and run.answer == question.answer


def test_naive_agent_reports_a_malformed_call_to_the_model_and_goes_on() -> None:
    question = QUESTIONS[1]  # two clock lookups

    def malformed_first(request: dict) -> "str | ToolCallReply":
        if "tools" in request and not any(m.get("role") == "tool" for m in request["messages"]):
            return ToolCallReply("current_time", '{"timezone": "Tok')  # cut off mid-string
        return scripted_reply(request)

    profile = LatencyProfile(ttft_s=0.0, tokens_per_s=10_000)
    with RunningSimulator(SimulatedBackend(malformed_first, profile)) as simulator:
        model = ChatOpenAI(base_url=simulator.base_url, api_key="none", model="frontier")
        run = asyncio.run(run_naive_agent(question.text, model, workload_tools(0.0, 0.0)))
    assert run.tool_calls[0]["output"].startswith("error: the call's arguments are not valid JSON")
    assert run.answer == question.answer


def test_naive_agent_keeps_a_final_answer_cut_off_at_its_token_limit() -> None:
    question = QUESTIONS[1]  # two clock lookups, then the answer

    def long_answer(request: dict) -> "str | ToolCallReply":
        choice = request.get("tool_choice")
        if isinstance(choice, dict) and choice["function"]["name"] == "final_answer":
            return ToolCallReply("final_answer", {"answer": "It is morning in Tokyo " * 40})
        return scripted_reply(request)

    profile = LatencyProfile(ttft_s=0.0, tokens_per_s=10_000)
    with RunningSimulator(SimulatedBackend(long_answer, profile)) as simulator:
        model = ChatOpenAI(
            base_url=simulator.base_url, api_key="none", model="frontier", max_tokens=12
        )
        run = asyncio.run(
            run_naive_agent(question.text, model, workload_tools(0.0, 0.0), max_turns=3)
        )
    # The last turn must answer; its call is cut mid-string, and the text written so far is kept.
    assert run.turns == 3 and len(run.tool_calls) == 2
    assert run.answer.startswith("It is morning") and len(run.answer) < 12 * 4


def test_simulator_cuts_a_reply_at_max_tokens_and_says_so() -> None:
    def long_call(request: dict) -> ToolCallReply:
        return ToolCallReply("calculator", {"expression": " + ".join(["1"] * 200)})

    with RunningSimulator(SimulatedBackend(long_call, LatencyProfile(ttft_s=0.0))) as simulator:
        body = {"model": "fast", "messages": [{"role": "user", "content": "sum"}]}
        reply = httpx.post(
            f"{simulator.base_url}/chat/completions", json={**body, "max_tokens": 5}, timeout=30
        ).json()["choices"][0]
    assert reply["finish_reason"] == "length"
    arguments = reply["message"]["tool_calls"][0]["function"]["arguments"]
    assert arguments.startswith('{"expression": "1') and len(arguments) <= 5 * 4


def test_the_peer_calls_independent_tools_in_one_turn_and_answers() -> None:
    from bench.peer_agent import run_peer_agent

    question = QUESTIONS[0]  # two independent price lookups, then a calculation over both
    profile = LatencyProfile(ttft_s=0.0, tokens_per_s=10_000)
    with RunningSimulator(SimulatedBackend(scripted_reply, profile)) as simulator:
        model = ChatOpenAI(base_url=simulator.base_url, api_key="none", model="frontier")
        run = asyncio.run(
            run_peer_agent(question.text, model, workload_tools(0.0, 0.0, asynchronous=True))
        )
    # Turn 1: both lookups at once; turn 2: the calculation; turn 3: the answer.
    assert (run.turns, run.tool_calls, run.answer) == (3, 3, question.answer)


def _token_holding(text: str, position: int) -> int:
    """The index of the simulator's token that holds character `position` of `text`."""
    written = 0
    for index, token in enumerate(TOKEN.findall(text)):
        written += len(token)
        if written > position:
            return index
    raise ValueError(position)


def test_the_plan_bound_starts_each_call_once_its_step_of_the_plan_has_streamed() -> None:
    from bench.e2e import lower_bound_s, plan_bound_s

    question = QUESTIONS[0]  # two independent price lookups, then a calculation over both
    profile = LatencyProfile(ttft_s=1.0, tokens_per_s=10.0)
    profiles = {"fast": profile}
    latency = {"1": 0.0, "2": 0.0, "3": 0.0}
    ours = {"tool_latency_s": latency, "tier": "fast", "route_task": "lookup"}
    answer = lower_bound_s(question, ours, profiles)  # no tool time: the answer's minimum alone
    plan = question.plan_json()
    # Instant tools: the last call ends when the last step's closing brace streams (the plan
    # ends with that brace, then "]}").
    last_step = _token_holding(plan, len(plan) - 3)
    assert plan_bound_s(question, ours, profiles) == pytest.approx(
        profile.ttft_s + last_step / profile.tokens_per_s + answer
    )
    # A slow first lookup bounds the chain instead: plan-first adds only the TTFT and the tokens
    # up to the first step's closing brace.
    latency["1"] = 100.0
    first_step = _token_holding(plan, plan.index("}},") + 1)
    assert plan_bound_s(question, ours, profiles) == pytest.approx(
        profile.ttft_s + first_step / profile.tokens_per_s + 100.0 + answer
    )


def test_the_e2e_report_has_the_bound_the_peer_and_lossless_speculation(tmp_path) -> None:
    from bench import e2e
    from bench.workload import VARIANTS

    questions = [QUESTIONS[1], VARIANTS[0]]  # a shape, then a later question of that shape
    fast = LatencyProfile(ttft_s=0.01, tokens_per_s=2000)
    profiles = {"fast": fast, "frontier": fast}
    with e2e.simulated_backend(fast, fast) as base_url:
        report = asyncio.run(e2e.run(questions, base_url, 0.05, 0.1, profiles))
    aggregate = report["aggregate"]
    assert all(row["bound_ratio"] >= 1.0 for row in report["questions"])  # nothing beats it
    first_seen = report["questions"][0]
    assert first_seen["plan_bound_s"] > first_seen["bound_s"]  # the plan takes time to write
    assert first_seen["plan_bound_ratio"] >= 1.0  # nothing beats it without speculation
    assert {"bound_ratio", "plan_bound_ratio", "peer_speedup"} <= set(aggregate)
    assert 1.0 <= aggregate["bound_ratio_floor"] <= aggregate["bound_ratio"]
    # No run's first answer token comes before its floor, so no reduction beats the floor's.
    assert all(r["expressway"]["ttfa_s"] >= r["ttfa_floor_s"] for r in report["questions"])
    assert aggregate["ttfa_reduction"] <= aggregate["ttfa_reduction_floor"] < 1.0
    assert aggregate["answer_ttft_median_s"] >= fast.ttft_s  # the server's TTFT at the least
    speculation = aggregate["speculation"]
    assert speculation["hit_rate"] == 0.5 and speculation["side_effect_calls_speculated"] == 0
    assert speculation["lossless"], speculation["runs_differing_from_cache_off"]
    later = report["questions"][1]["expressway"]
    assert later["speculation"]["adopted"] == 2 and later["timeline"][0]["critical"]
