-- Runs after quota-lib.lua (see lua-script.ts).
-- Where scopes stand. ARGV[3]: {w = minute window, s = {{id, b = {{p, k}...}}...}}. Returns,
-- per scope: the minute window's tokens, slots in use, then per budget spent tokens, spent
-- micro-USD, reserved tokens, reserved micro-USD. Reaps first, so lost reservations do not count.
local plan = cjson.decode(ARGV[3])
local names = {'next'}
for _, s in ipairs(plan.s) do
  names[#names + 1] = 'm:' .. s.id
  names[#names + 1] = 'c:' .. s.id
  for _, b in ipairs(s.b) do names[#names + 1] = 'b:' .. s.id .. ':' .. b.p end
end
read(names)
reapIfDue()
flush()
local out = {}
for _, s in ipairs(plan.s) do
  local window, used = pair(F['m:' .. s.id])
  out[#out + 1] = (tonumber(window) == plan.w) and used or 0
  out[#out + 1] = num(F['c:' .. s.id])
  for _, b in ipairs(s.b) do
    local st, su, rt, ru = budgetCounts('b:' .. s.id .. ':' .. b.p, b.k)
    out[#out + 1] = st; out[#out + 1] = su; out[#out + 1] = rt; out[#out + 1] = ru
  end
end
return out
