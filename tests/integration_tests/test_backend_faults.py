"""Backend faults over real HTTP (simulated OpenAI-compatible server): errors are retried, then
the other tier answers with a `fallback` event; a cut stream fails clearly; no wait is unbounded."""

import pytest

from bench.harness import context_at
from bench.simulator import (
    Fault,
    FixedResponder,
    LatencyProfile,
    RunningSimulator,
    SimulatedBackend,
)
from expressway.events import iter_events
from graphs.agent import graph
from nodes.answer import AnswerStreamBrokenError

QUESTION = "Summarize this note in one sentence: the offsite moved to Thursday."  # no tools
QUICK = LatencyProfile(ttft_s=0.01, tokens_per_s=2000)


async def _run(faults: list[Fault], **context) -> tuple[list[dict], SimulatedBackend]:
    backend = SimulatedBackend(FixedResponder(answer_tokens=20), QUICK, faults=faults)
    with RunningSimulator(backend) as simulator:
        events = [
            event
            async for event in iter_events(
                graph.astream(
                    {"messages": [("user", QUESTION)]},
                    context=context_at(simulator.base_url, **context),
                    stream_mode=["custom"],
                )
            )
        ]
    return events, backend


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.reliability("backends")
async def test_a_transient_error_is_retried_on_the_same_tier(status: int) -> None:
    events, backend = await _run([Fault(status=status)])
    assert backend.stats.requests == 2
    assert not any(event["type"] == "fallback" for event in events)
    assert events[-1]["type"] == "run.finished"


@pytest.mark.reliability("backends")
async def test_a_tier_that_keeps_failing_falls_back_to_the_other_tier() -> None:
    events, _ = await _run([Fault(status=503), Fault(status=503)])
    fallback = next(event for event in events if event["type"] == "fallback")
    assert (fallback["from_tier"], fallback["to_tier"]) == ("fast", "frontier")
    assert {e["tier"] for e in events if e["type"] == "token"} == {"frontier"}
    assert events[-1]["type"] == "run.finished"


@pytest.mark.reliability("backends")
async def test_a_response_slower_than_its_timeout_falls_back_within_a_bound() -> None:
    events, _ = await _run([Fault(stall_s=5), Fault(stall_s=5)], model_timeout_s=0.5)
    assert any(event["type"] == "fallback" for event in events)
    assert events[-1]["type"] == "run.finished"
    # Two 0.5 s timeouts and the client's retry pause, far from the two 5 s stalls.
    assert events[-1]["timings"]["total"] < 4


@pytest.mark.reliability("backends")
async def test_a_stream_cut_mid_answer_fails_clearly_after_the_tokens_shown() -> None:
    with pytest.raises(AnswerStreamBrokenError, match=r"broke after \d+ chunks"):
        await _run([Fault(cut_after_tokens=5)])
