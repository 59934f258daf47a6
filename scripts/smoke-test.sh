#!/usr/bin/env bash
# Starts the gateway the way the README says (npm start, embedded defaults: no config, no
# Redis) and checks it answers over HTTP with curl. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# A free port unless told otherwise: a fixed one can be taken by anything else on the machine.
port="${SMOKE_PORT:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}"
log="$(mktemp)"
data="$(mktemp -d)"
# Its own process group (setsid), so cleanup stops npm and the node it starts together.
setsid env -u REDIS_URL -u TOLLGATE_CONFIG -u OPENAI_API_KEY -u TOLLGATE_ADMIN_KEY -u TOLLGATE_AUTH \
  TOLLGATE_DATA_DIR="$data" PORT="$port" npm start >"$log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # setsid may fork, so $pid can end before the gateway has: wait for the whole group, whose
  # graceful shutdown still writes to the data directory.
  for _ in $(seq 1 100); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -rf "$log" "$data"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || { echo "smoke: gateway did not start"; cat "$log"; exit 1; }

# The quick-start flow: the first start prints a generated admin key; create a team and a key.
admin="$(grep -o 'TOLLGATE_ADMIN_KEY=tga-[A-Za-z0-9_-]*' "$log" | head -1 | cut -d= -f2 || true)"
[ -n "$admin" ] || { echo "smoke: no generated admin key was printed"; cat "$log"; exit 1; }
team="$(curl -fsS "http://127.0.0.1:$port/admin/teams" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' -d '{"name":"smoke"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)"
key="$(curl -fsS "http://127.0.0.1:$port/admin/keys" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' -d "{\"team_id\":\"$team\"}" | grep -o '"key":"[^"]*"' | cut -d'"' -f4)"
[ -n "$key" ] || { echo "smoke: could not create a key"; exit 1; }
status="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/models" -H 'Authorization: Bearer nope')"
[ "$status" = 401 ] || { echo "smoke: a wrong key got $status, not 401"; exit 1; }

reply="$(curl -fsS "http://127.0.0.1:$port/v1/chat/completions" \
  -H "Authorization: Bearer $key" \
  -d '{"model":"mock","messages":[{"role":"user","content":"smoke test"}]}')"
echo "$reply" | grep -q '"content":"smoke test"' || { echo "smoke: unexpected chat reply: $reply"; exit 1; }

stream="$(curl -fsSN "http://127.0.0.1:$port/v1/chat/completions" \
  -H "Authorization: Bearer $key" \
  -d '{"model":"mock","stream":true,"messages":[{"role":"user","content":"streamed"}]}')"
echo "$stream" | tail -n 2 | grep -q 'data: \[DONE\]' || { echo "smoke: stream did not end with [DONE]"; exit 1; }

curl -fsS "http://127.0.0.1:$port/readyz" | grep -q '"ready":true' || { echo "smoke: not ready"; exit 1; }
echo "smoke: ok (admin key, team, key, 401, chat, stream, readyz on port $port)"
