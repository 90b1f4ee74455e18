"""Request routing: a classifier (no LLM call) and the routing table it reads."""

from expressway.state import Route
from routers.classifier import classify, classify_turn
from routers.table import RoutingTable, RoutingTableError, load_routing_table

__all__ = [
    "Route",
    "RoutingTable",
    "RoutingTableError",
    "classify",
    "classify_turn",
    "load_routing_table",
]
