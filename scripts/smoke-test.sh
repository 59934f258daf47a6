#!/usr/bin/env bash
# Starts the gateway the way the README says (npm start, embedded defaults: no config, no
# Redis) and checks it answers over HTTP with curl. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${SMOKE_PORT:-18080}"
log="$(mktemp)"
env -u REDIS_URL -u TOLLGATE_CONFIG -u OPENAI_API_KEY PORT="$port" npm start >"$log" 2>&1 &
pid=$!
cleanup() {
  # npm start runs node as a child; stop the whole group.
  pkill -TERM -P "$pid" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { echo "smoke: gateway did not start"; cat "$log"; exit 1; }

reply="$(curl -fsS "http://127.0.0.1:$port/v1/chat/completions" \
  -H 'Authorization: Bearer anything' \
  -d '{"model":"mock","messages":[{"role":"user","content":"smoke test"}]}')"
echo "$reply" | grep -q '"content":"smoke test"' || { echo "smoke: unexpected chat reply: $reply"; exit 1; }

stream="$(curl -fsSN "http://127.0.0.1:$port/v1/chat/completions" \
  -H 'Authorization: Bearer anything' \
  -d '{"model":"mock","stream":true,"messages":[{"role":"user","content":"streamed"}]}')"
echo "$stream" | tail -n 2 | grep -q 'data: \[DONE\]' || { echo "smoke: stream did not end with [DONE]"; exit 1; }

curl -fsS "http://127.0.0.1:$port/readyz" | grep -q '"ready":true' || { echo "smoke: not ready"; exit 1; }
echo "smoke: ok (healthz, chat, stream, readyz on port $port)"
