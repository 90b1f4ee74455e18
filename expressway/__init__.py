"""Expressway: CLI, configuration, state, events, model tiers and the embedded backend."""
