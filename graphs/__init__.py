"""The compiled agent graph and its factory."""
