#!/usr/bin/env bash
# Where the engine component spends its time on one model, on wasmtime (`perf`; not a test).
#   tests/bench-web/profile.sh [MODEL.onnx]     (default: the bench site's resnet50.onnx)
# The component's core wasm has no name section, so perf names JIT code wasm[0]::function[N];
# wasm-fn.mjs then describes the hottest functions by their instructions.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-build/bench/web/models/resnet50.onnx}
OUT=build/bench/profile
command -v perf >/dev/null || { echo "profile.sh: needs perf" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "profile.sh: $MODEL not found (run scripts/bench-web first, or pass a model)" >&2; exit 1; }
mkdir -p "$OUT"
cp target/wasm32-wasip2/wasm/inference.wasm "$OUT/engine.wasm"
# Twice: the first run compiles and caches the .cwasm; perf resolves symbols only in the mapped
# file. The cache is ours (SC_CACHE_DIR), not the user's.
for _ in 1 2; do
  SC_CACHE_DIR="$OUT/cache" perf record -q -F 997 -o "$OUT/perf.data" -- target/release/secure-context --component "$OUT/engine.wasm" \
    bench --runs 10 --ort-script /nonexistent --model "model=$MODEL" > "$OUT/bench.log" 2>&1
done
total=$(perf report -i "$OUT/perf.data" --no-children --sort dso -F overhead,dso 2>/dev/null | awk '/cwasm/ {gsub("%","",$1); print $1}')
echo "wasm code: ${total:-0}% of all samples (the rest is wasmtime, the native engine and the size measurement); hottest functions:"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym -F overhead,sym 2>/dev/null | grep 'wasm\[0\]' | sort -t% -k1 -rn | awk 'NR <= 5 {print $1, $3}' | tee "$OUT/hot.txt"
rm -rf "$OUT/jco"
web/node_modules/.bin/jco transpile "$OUT/engine.wasm" -o "$OUT/jco" --no-typescript --quiet --name inference
node tests/bench-web/wasm-fn.mjs "$OUT/jco/inference.core.wasm" $(sed -n 's/.*function\[\([0-9]*\)\].*/\1/p' "$OUT/hot.txt")
