"""The graph's nodes: LLMCompiler's planner, task runner and joiner, plus the answer."""
