#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up, build, synthesize a small model, start
# `strata serve` on loopback, send one OpenAI and one Anthropic request (the second reports
# the cached prompt tokens), and stop the server. Usage: scripts/demo.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8089}
scripts/setup.sh
cmake --preset default >/dev/null
cmake --build build -j"$(nproc)"
model=/tmp/strata-demo-tiny.gguf
build/src/cli/strata synth --preset tiny --type Q8_0 -o "$model"
build/src/cli/strata serve -m "$model" --alias tiny --port "$port" --cache-dir /tmp/strata-demo-cache &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
body='{"model":"tiny","max_tokens":16,"messages":[{"role":"system","content":"You are a helpful coding agent."},{"role":"user","content":"Hello"}]}'
echo "--- POST /v1/chat/completions"
curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' -d "$body"
echo
echo "--- POST /v1/messages (same prompt: cache_read_input_tokens > 0)"
curl -s "http://127.0.0.1:$port/v1/messages" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d "$body"
echo
