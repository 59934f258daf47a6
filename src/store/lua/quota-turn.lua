-- Runs after quota-lib.lua (see lua-script.ts).
-- Everything one team asked of its quota during one event-loop turn of one gateway process:
-- admits, settles and releases, run in the order they were asked for, exactly as that many
-- single calls in a row would run. ARGV[3]: how many; then per item a kind and its values:
--   'a', the caller's now, a reservation id or '', the plan, the record      (an admit)
--   'f', id, tokens, micro-USD, settle flag, the caller's now                 (a settle or release)
-- Each item runs at its own caller's now (ARGV[1] is not used).
-- Fields are read once for the whole turn (a second read only for fields named by the records
-- being finished and by no admit) and written back once at its end.
--
-- An admit counts a request against its request rates and, when it names a reservation,
-- reserves for it.
-- plan = {q = {{s, pm, pd}...} request rates per scope, t, u, e (expiry), w (minute window),
--         s = {{id, c, m, b = {{p, k, mt, mu}...}}...} scopes with concurrency, tpm, budgets}
-- Request windows start at a scope's first request ('start,count'); a refused request is not
-- counted. Then every reservation limit is checked against the state before the request and,
-- only if none refuses, the estimate is added everywhere (all-or-nothing). Refusal ranks:
-- request rate 0, budget tokens 1, budget USD 2, concurrency 3, tpm 4; within a rank the first
-- scope. The last five values of every answer are the request window with the fewest requests
-- left ({scope index, 1 minute | 2 day, limit, remaining, reset ms}; -1s when none).
-- Granted: {1, tpm scope index, tpm limit, tpm remaining, ...window} (-1s without tpm limits).
-- Refused: {0, scope index, rank, limit, remaining, retry after ms or -1, budget index or, for
-- rank 0, 1 minute | 2 day, ...window}.
--
-- A settle (flag '1') replaces the estimate by the actual usage (tokens and micro-USD); a
-- release (flag '0') refunds all of it. A record is deleted once finished, so a repeat (in a
-- later turn or in this one) finds nothing and changes nothing. A minute window that has gone
-- needs no fixing. Answers 0 unknown, 1 live, 2 expired.
--
-- Returns one answer per item, in order. F holds the fields as the items before left them.
local function admitOne(id, plan, record)
  local rid = 'r:' .. id
  -- A repeated reservation id is the same request (a retried call): granted, nothing counted again.
  if id ~= '' and F[rid] then return {1, -1, -1, -1, -1, -1, -1, -1, -1} end
  reapIfDue()

  local window = {-1, -1, -1, -1, -1}
  local counted = {}
  for i, q in ipairs(plan.q) do
    for kind = 1, 2 do
      -- Not `kind == 1 and q.pm or q.pd`: with no per-minute limit that idiom gives the day's,
      -- and the minute would be counted (and could refuse) with it.
      local max
      if kind == 1 then max = q.pm else max = q.pd end
      if max then
        local field = (kind == 1 and 'q:' or 'd:') .. q.s
        local span = kind == 1 and 60000 or 86400000
        local first, count = pair(F[field])
        local start = tonumber(first)
        if start == nil or now >= start + span then start, count = now, 0 end
        -- Another instance's clock may have started the window a little ahead of ours (or its
        -- script overtook ours): the wait is never longer than the window itself.
        local reset = math.min(span, start + span - now)
        if count + 1 > max then
          return {0, i, 0, max, 0, reset, kind, i, kind, max, 0, reset}
        end
        counted[#counted + 1] = {field, int(start) .. ',' .. int(count + 1)}
        local left = max - count - 1
        if window[1] == -1 or left < window[4] then window = {i, kind, max, left, reset} end
      end
    end
  end
  for _, c in ipairs(counted) do set(c[1], c[2]) end
  if id == '' then
    return {1, -1, -1, -1, window[1], window[2], window[3], window[4], window[5]}
  end

  local t, u, w = plan.t, plan.u, plan.w
  local deny = nil
  local function refuse(rank, scope, limit, used, retry, budgetIndex)
    if deny == nil or rank < deny[3] then
      deny = {0, scope, rank, limit, math.max(0, limit - used), retry, budgetIndex}
    end
  end
  local function minuteUsed(s)
    local window, used = pair(F['m:' .. s])
    if tonumber(window) == w then return used end
    return 0
  end
  for i, s in ipairs(plan.s) do
    for j, b in ipairs(s.b) do
      local st, su, rt, ru = budgetCounts('b:' .. s.id .. ':' .. b.p, b.k)
      if b.mt and st + rt + t > b.mt then refuse(1, i, b.mt, st + rt, -1, j) end
      if b.mu and su + ru + u > b.mu then refuse(2, i, b.mu, su + ru, -1, j) end
    end
    if s.c then
      local inUse = num(F['c:' .. s.id])
      if inUse + 1 > s.c then refuse(3, i, s.c, inUse, -1, 0) end
    end
    if s.m then
      local used = minuteUsed(s.id)
      if used + t > s.m then refuse(4, i, s.m, used, plan.retry, 0) end
    end
  end
  if deny then
    for _, v in ipairs(window) do deny[#deny + 1] = v end
    return deny
  end

  local tight = {-1, -1, -1}
  for i, s in ipairs(plan.s) do
    for _, b in ipairs(s.b) do addBudget('b:' .. s.id .. ':' .. b.p, b.k, 0, 0, t, u) end
    if s.c then set('c:' .. s.id, int(num(F['c:' .. s.id]) + 1)) end
    if s.m then
      local used = minuteUsed(s.id) + t
      set('m:' .. s.id, int(w) .. ',' .. int(used))
      local left = math.max(0, s.m - used)
      if tight[1] == -1 or left < tight[3] then tight = {i, s.m, left} end
    end
  end
  set(rid, record)
  if F.next == nil or plan.e < tonumber(F.next) then set('next', int(plan.e)) end
  return {1, tight[1], tight[2], tight[3], window[1], window[2], window[3], window[4], window[5]}
end

local function finishOne(item)
  local raw = F[item.rid]
  if not raw then return 0 end
  -- Decoded once when its fields were collected, unless an item before it changed the record.
  local r, forgetAt = item.r, item.forgetAt
  if raw ~= item.raw then r, forgetAt = decodeRecord(raw) end
  -- Past its ttl but not reaped yet: it is freed now, as the reaper would have, and is expired.
  if not forgetAt then unreserve(r) end
  local expired = forgetAt ~= nil or r.e <= item.now
  local at, au = 0, 0
  if item.settle then at, au = item.t, item.u end
  for _, b in ipairs(r.b) do addBudget('b:' .. b[1] .. ':' .. b[2], b[3], at, au, 0, 0) end
  for _, m in ipairs(r.m) do
    local window, used = pair(F['m:' .. m[1]])
    if tonumber(window) == m[2] then
      set('m:' .. m[1], window .. ',' .. int(math.max(0, used + at - r.t)))
    end
  end
  del(item.rid)
  return expired and 2 or 1
end

local n = tonumber(ARGV[3])
local items = {}
local at = 4
want('next')
for i = 1, n do
  local item
  if ARGV[at] == 'a' then
    item = {admit = true, now = tonumber(ARGV[at + 1]), id = ARGV[at + 2], plan = cjson.decode(ARGV[at + 3]), record = ARGV[at + 4]}
    at = at + 5
    if item.id ~= '' then want('r:' .. item.id) end
    for _, q in ipairs(item.plan.q) do
      if q.pm then want('q:' .. q.s) end
      if q.pd then want('d:' .. q.s) end
    end
    for _, s in ipairs(item.plan.s) do
      if s.c then want('c:' .. s.id) end
      if s.m then want('m:' .. s.id) end
      for _, b in ipairs(s.b) do want('b:' .. s.id .. ':' .. b.p) end
    end
  else
    item = {
      rid = 'r:' .. ARGV[at + 1],
      t = tonumber(ARGV[at + 2]),
      u = tonumber(ARGV[at + 3]),
      settle = ARGV[at + 4] == '1',
      now = tonumber(ARGV[at + 5]),
    }
    at = at + 6
    want(item.rid)
  end
  items[i] = item
end
readWanted()
-- The fields a finished reservation counted in are named by its record.
for _, item in ipairs(items) do
  local raw = not item.admit and F[item.rid]
  if raw then
    item.raw = raw
    item.r, item.forgetAt = decodeRecord(raw)
    local r = item.r
    for _, s in ipairs(r.c) do want('c:' .. s) end
    for _, m in ipairs(r.m) do want('m:' .. m[1]) end
    for _, b in ipairs(r.b) do want('b:' .. b[1] .. ':' .. b[2]) end
  end
end
readWanted()
local answers = {}
for i, item in ipairs(items) do
  now = item.now
  if item.admit then answers[i] = admitOne(item.id, item.plan, item.record)
  else answers[i] = finishOne(item) end
end
-- One bulk string rather than nested arrays: the client's RESP decoder spends ~3.5k instructions
-- on each value of a reply, ~40k on an admit's nine numbers and their arrays. An admit's numbers
-- are joined by ',', the items by ';'; '%d' truncates as Redis's integer replies did. Formatted
-- before the writes, so a value that cannot be formatted fails the call with nothing written.
local out = {}
for i, answer in ipairs(answers) do
  if type(answer) == 'table' then
    local numbers = {}
    for j, value in ipairs(answer) do numbers[j] = string.format('%d', value) end
    out[i] = table.concat(numbers, ',')
  else
    out[i] = string.format('%d', answer)
  end
end
flush()
return table.concat(out, ';')
