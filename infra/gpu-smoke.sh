#!/usr/bin/env bash
# GPU smoke test: on a machine with an NVIDIA GPU and the `vllm` package, launch a small model
# with the fast-tier profile's serving flags and measure it with `vllm bench serve`, three ways:
# baseline, + prefix caching, + prefix caching and n-gram speculative decoding.
#   MODEL=Qwen/Qwen2.5-0.5B-Instruct infra/gpu-smoke.sh [RESULT_DIR]
# Prints TTFT / ITL / output tokens/s per variant and writes vLLM's JSON results to RESULT_DIR.
set -euo pipefail
MODEL=${MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
PORT=${PORT:-8010}
OUT=${1:-gpu-smoke-results}
mkdir -p "$OUT"
common=(--model "$MODEL" --port "$PORT" --max-model-len 8192 --gpu-memory-utilization 0.85
        --enable-chunked-prefill --max-num-batched-tokens 8192)
declare -A variants=(
  [baseline]="--no-enable-prefix-caching"
  [prefix-cache]="--enable-prefix-caching"
  [prefix-cache+ngram-spec]="--enable-prefix-caching --speculative-config {\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_max\":4}"
)
for name in baseline prefix-cache prefix-cache+ngram-spec; do
  # shellcheck disable=SC2086  # the variant's flags are meant to split
  python -m vllm.entrypoints.openai.api_server "${common[@]}" ${variants[$name]} >"$OUT/$name.server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 180); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 2; done
  vllm bench serve --backend openai-chat --base-url "http://127.0.0.1:$PORT" \
    --endpoint /v1/chat/completions --model "$MODEL" --dataset-name random \
    --random-prefix-len 1024 --random-input-len 256 --random-output-len 128 \
    --num-prompts 200 --max-concurrency 16 --ignore-eos --temperature 0 \
    --percentile-metrics ttft,itl --metric-percentiles 50,99 \
    --save-result --result-dir "$OUT" --result-filename "$name.json" | tail -n 22
  kill "$server"; wait "$server" || true
done
