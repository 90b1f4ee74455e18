"""Benchmarks that measure the project's latency claims side by side."""
