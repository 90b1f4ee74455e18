"""Freezing the startup heap takes the compiled graph out of the collector's full passes."""

import gc
import subprocess
import sys
from pathlib import Path


def test_frozen_startup_objects_are_not_walked_by_collections() -> None:
    from expressway.heap import freeze_static_heap
    from graphs.agent import graph

    freeze_static_heap()
    try:
        assert gc.get_freeze_count() > 0
        assert not any(tracked is graph for tracked in gc.get_objects())
    finally:
        gc.unfreeze()


def test_the_frozen_heap_is_released_at_exit() -> None:
    """Extensions that check for leaks at shutdown (triton's) must see their objects finalized."""
    # atexit runs last-in first-out: this check, registered first, runs after the heap's own hook.
    code = (
        "import atexit, gc; atexit.register(lambda: print(gc.get_freeze_count()));"
        "from expressway.heap import freeze_static_heap; freeze_static_heap();"
        "print(gc.get_freeze_count() > 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert done.stdout.split() == ["True", "0"]
