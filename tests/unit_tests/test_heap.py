"""Freezing the startup heap takes the compiled graph out of the collector's full passes."""

import gc


def test_frozen_startup_objects_are_not_walked_by_collections() -> None:
    from expressway.heap import freeze_static_heap
    from graphs.agent import graph

    freeze_static_heap()
    try:
        assert gc.get_freeze_count() > 0
        assert not any(tracked is graph for tracked in gc.get_objects())
    finally:
        gc.unfreeze()
