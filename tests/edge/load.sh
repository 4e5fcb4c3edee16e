#!/usr/bin/env bash
# Bounded load test: N requests (default 20000) at C concurrent (default 32), keep-alive, on
# 127.0.0.1, with ApacheBench (Debian apache2-utils) against
#   1. the edge app under `secure-context serve` (what scripts/up runs), and
#   2. nginx (Debian) serving the same file with the same headers (copied from (1)'s response),
# in the same run. Fails on any error or non-2xx. Prints one line per server and the ratio.
#   tests/edge/load.sh [PATH]      (default /index.html; needs the build and scripts/build-edge)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-20000}"
C="${C:-32}"
P="${1:-/index.html}"
command -v ab >/dev/null || { apt-get update -qq && apt-get install -y -qq apache2-utils >/dev/null; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

EDGE_PORT=$(free_port)
target/release/secure-context serve --manifest spin.toml \
  --addr "127.0.0.1:$EDGE_PORT" 2>"$WORK/edge.log" &
PIDS+=($!)
wait_port "$EDGE_PORT"

# nginx: same file, same headers (everything the edge app sent except the ones nginx makes).
NGINX_PORT=$(free_port)
curl -s -D "$WORK/headers" -o /dev/null "http://127.0.0.1:$EDGE_PORT$P"
ADD=$(grep -iv '^\(HTTP/\|date:\|content-length:\|content-type:\|etag:\|accept-ranges:\|transfer-encoding:\|connection:\|\r$\)' "$WORK/headers" \
  | tr -d '\r' | sed -E "s/^([^:]+): (.*)$/add_header \1 \"\2\" always;/")
CT=$(grep -i '^content-type:' "$WORK/headers" | tr -d '\r' | cut -d' ' -f2-)
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server_tokens off;
  sendfile on;
  etag on;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $PWD/build/web;
    location = $P {
      default_type "$CT";
      types { }
      $ADD
    }
  }
}
EOF
nginx -p "$WORK" -c "$WORK/nginx.conf"
wait_port "$NGINX_PORT" || true

# Both must send the same policy headers.
curl -s -D "$WORK/nginx-headers" -o "$WORK/nginx-body" "http://127.0.0.1:$NGINX_PORT$P"
for h in content-security-policy cross-origin-opener-policy cross-origin-embedder-policy permissions-policy strict-transport-security; do
  a=$(grep -i "^$h:" "$WORK/headers" | tr -d '\r'); b=$(grep -i "^$h:" "$WORK/nginx-headers" | tr -d '\r')
  [ "$a" = "$b" ] || { echo "load: nginx header differs: $h" >&2; exit 1; }
done
cmp -s "$WORK/nginx-body" "build/web${P}" || { echo "load: nginx body differs" >&2; exit 1; }

run() { # name port -> "rps p99_ms"
  ab -q -k -n "$N" -c "$C" "http://127.0.0.1:$2$P" >"$WORK/$1.ab" 2>&1 || { cat "$WORK/$1.ab" >&2; exit 1; }
  local failed non2xx rps p99
  failed=$(awk '/^Failed requests:/ {print $3}' "$WORK/$1.ab")
  non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$WORK/$1.ab"); non2xx=${non2xx:-0}
  complete=$(awk '/^Complete requests:/ {print $3}' "$WORK/$1.ab")
  rps=$(awk '/^Requests per second:/ {print $4}' "$WORK/$1.ab")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.ab")
  if [ "$failed" != 0 ] || [ "$non2xx" != 0 ] || [ "$complete" != "$N" ]; then
    echo "load: $1: $complete complete, $failed failed, $non2xx non-2xx" >&2; cat "$WORK/$1.ab" >&2; exit 1
  fi
  echo "$rps $p99"
}
# Warm up (compiles nothing: the component is compiled at start; fills instance pools).
ab -q -k -n 500 -c "$C" "http://127.0.0.1:$EDGE_PORT$P" >/dev/null 2>&1
ab -q -k -n 500 -c "$C" "http://127.0.0.1:$NGINX_PORT$P" >/dev/null 2>&1
read -r E_RPS E_P99 < <(run edge "$EDGE_PORT")
read -r N_RPS N_P99 < <(run nginx "$NGINX_PORT")
SIZE=$(stat -c %s "build/web${P}")
echo "load: $N requests, $C concurrent, GET $P ($SIZE bytes, identity), 127.0.0.1, $(nproc) cores, ab -k"
printf 'load: secure-context serve (edge.wasm): %8.0f req/s  p99 %4s ms  errors 0\n' "$E_RPS" "$E_P99"
printf 'load: nginx %-27s: %8.0f req/s  p99 %4s ms  errors 0\n' "$(nginx -v 2>&1 | sed 's/.*nginx\///')" "$N_RPS" "$N_P99"
python3 -c "print(f'load: edge/nginx request rate ratio {$E_RPS/$N_RPS:.2f}')"
