"""The quality/cost curve of the escalation threshold, the way RouteLLM reports routers.

For each threshold: how often the tier is right, what share of requests the frontier tier pays for,
and the two kinds of mistakes (a fast request sent to frontier costs latency and money; a frontier
request sent to fast costs quality). `expressway bench route` prints it for the held-out sets and
`make train-router` for cross-validated decisions, so a user can pick `escalate_below_confidence`.
"""

from dataclasses import dataclass

from routers.table import RoutingTable

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class Decision:
    truth: str  # the labeled task
    task: str  # the classifier's task
    confidence: float


def threshold_curve(
    decisions: list[Decision], table: RoutingTable, thresholds: tuple[float, ...] = THRESHOLDS
) -> list[dict[str, float]]:
    points = []
    for threshold in thresholds:
        right = to_frontier = fast_to_frontier = frontier_to_fast = 0
        for decision in decisions:
            tier = table.tier_for(decision.task, decision.confidence, threshold)
            wanted = table.tasks[decision.truth].tier
            right += tier == wanted
            to_frontier += tier == "frontier"
            fast_to_frontier += wanted == "fast" and tier == "frontier"
            frontier_to_fast += wanted == "frontier" and tier == "fast"
        points.append(
            {
                "threshold": threshold,
                "tier_accuracy": round(right / len(decisions), 4),
                "share_to_frontier": round(to_frontier / len(decisions), 4),
                "fast_sent_to_frontier": fast_to_frontier,
                "frontier_sent_to_fast": frontier_to_fast,
            }
        )
    return points
