"""Serving benchmark: TTFT, inter-token latency and output tokens/s of any OpenAI-compatible
endpoint at several concurrency levels, with and without a shared prompt prefix (the prefix-cache
effect). It drives vLLM's own `vllm bench serve` (vllm.benchmarks.serve) rather than rewriting it,
so it needs the `embedded` extra, and defaults to the embedded server.
"""

import contextlib
import itertools
import json
import sys
import tempfile
from typing import Any

from app.embedded import model_dir
from expressway.context import Context

KEYS = ("median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms", "output_throughput")


def run_vllm_bench(arguments: list[str]) -> dict[str, Any]:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    with contextlib.redirect_stdout(sys.stderr):  # its report goes to stderr; stdout stays JSON
        return bench_main(parser.parse_args(arguments))


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    context = Context()
    parser = argparse.ArgumentParser(prog="expressway bench serving")
    parser.add_argument("--base-url", default=context.embedded_base_url.removesuffix("/v1"))
    parser.add_argument("--model", default=context.fast_model)
    parser.add_argument(
        "--tokenizer",
        default=str(model_dir()),
        help="a local tokenizer folder for the served model (default: the embedded model's)",
    )
    parser.add_argument("--concurrency", default="1,4", help="comma-separated levels")
    parser.add_argument("--num-prompts", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=128, help="tokens after the prefix")
    parser.add_argument("--prefix-len", type=int, default=512, help="shared prefix tokens")
    parser.add_argument("--output-len", type=int, default=16)
    args = parser.parse_args(argv)
    rows = []
    levels = [int(level) for level in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as results:
        for seed, (prefix, concurrency) in enumerate(
            itertools.product((0, args.prefix_len), levels)
        ):
            # Same total prompt length in both variants: only the sharing differs.
            result = run_vllm_bench([
                    "--backend", "openai-chat", "--base-url", args.base_url,
                    "--endpoint", "/v1/chat/completions", "--model", args.model,
                    "--tokenizer", args.tokenizer, "--dataset-name", "random",
                    "--random-input-len", str(args.input_len + args.prefix_len - prefix),
                    "--random-prefix-len", str(prefix), "--random-output-len", str(args.output_len),
                    "--num-prompts", str(args.num_prompts), "--max-concurrency", str(concurrency),
                    "--ignore-eos", "--disable-tqdm", "--percentile-metrics", "ttft,itl",
                    "--metric-percentiles", "50,99", "--result-dir", results,
                    # A new seed per run: the same random prompts would hit the prefix cache.
                    "--seed", str(seed + 1), "--temperature", "0",
                ])  # fmt: skip
            rows.append(
                {
                    "concurrency": concurrency,
                    "shared_prefix_tokens": prefix,
                    **{key: round(float(result[key]), 3) for key in KEYS if key in result},
                }
            )
    return {"benchmark": "serving", "schema_version": 1, "base_url": args.base_url, "rows": rows}


if __name__ == "__main__":
    print(json.dumps(main([])))
