-- Runs after quota-prelude.lua (see lua-script.ts).
-- Reads counters after reaping (hence a script, not plain reads). ARGV[3]: per scope
-- {m = window key, c = slots key, b = budget keys}. Returns per scope: window tokens, slots in
-- use, then settled tokens, settled USD, reserved tokens, reserved USD per budget.
local out = {}
for _, s in ipairs(cjson.decode(ARGV[3])) do
  table.insert(out, num(redis.call('GET', s.m)))
  table.insert(out, num(redis.call('GET', s.c)))
  for _, k in ipairs(s.b) do
    local v = redis.call('HMGET', k, 'st', 'su', 'rt', 'ru')
    for f = 1, 4 do table.insert(out, num(v[f])) end
  end
end
return out
