-- Runs after quota-lib.lua (see lua-script.ts).
-- Settle (ARGV[6] = '1': replace the estimate by the actual usage ARGV[4] tokens, ARGV[5]
-- micro-USD) or release (ARGV[6] = '0': refund all) reservation ARGV[3]. The record is deleted,
-- so a repeat finds nothing and changes nothing. A minute window that has gone needs no fixing.
-- Returns 0 unknown, 1 live, 2 expired.
local rid = 'r:' .. ARGV[3]
local raw = redis.call('HGET', H, rid)
if not raw then return 0 end
local r, forgetAt = decodeRecord(raw)
local names = {}
for _, s in ipairs(r.c) do names[#names + 1] = 'c:' .. s end
for _, m in ipairs(r.m) do names[#names + 1] = 'm:' .. m[1] end
for _, b in ipairs(r.b) do names[#names + 1] = 'b:' .. b[1] .. ':' .. b[2] end
read(names)
-- Past its ttl but not reaped yet: it is freed now, as the reaper would have, and is expired.
if not forgetAt then unreserve(r) end
local expired = forgetAt ~= nil or r.e <= now
local at, au = 0, 0
if ARGV[6] == '1' then at, au = tonumber(ARGV[4]), tonumber(ARGV[5]) end
for _, b in ipairs(r.b) do addBudget('b:' .. b[1] .. ':' .. b[2], b[3], at, au, 0, 0) end
for _, m in ipairs(r.m) do
  local window, used = pair(F['m:' .. m[1]])
  if tonumber(window) == m[2] then
    set('m:' .. m[1], window .. ',' .. int(math.max(0, used + at - r.t)))
  end
end
flush()
redis.call('HDEL', H, rid)
if expired then return 2 end
return 1
