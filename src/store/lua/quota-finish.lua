-- Runs after quota-lib.lua (see lua-script.ts).
-- Settles or releases a batch of reservations of one team, in order, as that many single calls
-- would: settle (flag '1': the estimate is replaced by the actual usage, tokens and micro-USD)
-- or release (flag '0': all of it refunded). ARGV[3]: how many; then five values each: id,
-- tokens, micro-USD, flag, the caller's now. A record is deleted once finished, so a repeat (in
-- a later batch or in this one) finds nothing and changes nothing. A minute window that has gone
-- needs no fixing. Returns, per reservation: 0 unknown, 1 live, 2 expired.
local n = tonumber(ARGV[3])
local items, rids = {}, {}
for i = 1, n do
  local at = 3 + (i - 1) * 5
  items[i] = {
    rid = 'r:' .. ARGV[at + 1],
    t = tonumber(ARGV[at + 2]),
    u = tonumber(ARGV[at + 3]),
    settle = ARGV[at + 4] == '1',
    now = tonumber(ARGV[at + 5]),
  }
  rids[i] = items[i].rid
end
local raws = redis.call('HMGET', H, unpack(rids))
for i, item in ipairs(items) do
  local raw = raws[i]
  if raw then
    item.r, item.forgetAt = decodeRecord(raw)
    for _, s in ipairs(item.r.c) do want('c:' .. s) end
    for _, m in ipairs(item.r.m) do want('m:' .. m[1]) end
    for _, b in ipairs(item.r.b) do want('b:' .. b[1] .. ':' .. b[2]) end
  end
end
read(wantedNames)
local results, gone, finished = {}, {}, {}
for i, item in ipairs(items) do
  local r = item.r
  if not r or finished[item.rid] then
    results[i] = 0
  else
    finished[item.rid] = true
    -- Past its ttl but not reaped yet: it is freed now, as the reaper would have, and is expired.
    if not item.forgetAt then unreserve(r) end
    local expired = item.forgetAt ~= nil or r.e <= item.now
    local at, au = 0, 0
    if item.settle then at, au = item.t, item.u end
    for _, b in ipairs(r.b) do addBudget('b:' .. b[1] .. ':' .. b[2], b[3], at, au, 0, 0) end
    for _, m in ipairs(r.m) do
      local window, used = pair(F['m:' .. m[1]])
      if tonumber(window) == m[2] then
        set('m:' .. m[1], window .. ',' .. int(math.max(0, used + at - r.t)))
      end
    end
    gone[#gone + 1] = item.rid
    results[i] = expired and 2 or 1
  end
end
flush()
inSlices('HDEL', gone)
return results
