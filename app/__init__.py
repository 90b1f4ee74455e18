"""The application layer on top of the graph: the `expressway` CLI and the embedded vLLM server."""
