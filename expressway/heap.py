"""Keeps the garbage collector's full passes off the token stream."""

import atexit
import gc


def freeze_static_heap() -> None:
    """Collect once, then move every object alive now (modules, classes, the compiled graph) to
    the collector's permanent generation, as vLLM does once its server has started.

    A full (generation 2) collection walks every tracked object: with LangGraph, LangChain and the
    OpenAI SDK loaded that took 65-155 ms on the dev machine, a stall in every token stream of the
    process. Frozen objects are never walked again, so later full passes cover only what runs
    allocate. Call it once, after startup. Reference counting still frees frozen objects that are
    dropped; only cycles among them stay (a service's startup objects live as long as it does).
    """
    gc.collect()
    gc.freeze()
    # Unfrozen at exit, so the last collection still finalizes them: extensions that check for
    # leaked objects at shutdown (triton's nanobind bindings) would otherwise report them.
    atexit.unregister(gc.unfreeze)
    atexit.register(gc.unfreeze)
