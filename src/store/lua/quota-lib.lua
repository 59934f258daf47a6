-- Shared start of every quota script (see redis-quota-store.ts for the layout). KEYS[1]: the
-- team's quota hash, ARGV[1]: now (the caller's clock, so tests can inject time), ARGV[2]: how
-- long an expired reservation is remembered. A script reads the fields it needs once (HMGET),
-- works on them here, and writes the ones it changed back once (HSET): a request costs a
-- handful of Redis commands whatever its number of scopes and budgets.
local H = KEYS[1]
local now = tonumber(ARGV[1])
local grace = tonumber(ARGV[2])
local function num(v) return tonumber(v) or 0 end
local match, fmt = string.match, string.format
-- Numbers go to Redis as text: Lua prints -0 as '-0' and big ones as '1e+15'.
local function int(n) return fmt('%d', n) end
-- A 'first,second' field (a window and its count): the first part and the second as a number.
-- One pattern match: Lua's gmatch splitting cost more than the rest of a script's arithmetic.
local function pair(v)
  if not v then return nil, 0 end
  local first, second = match(v, '^([^,]*),(.*)$')
  return first, num(second)
end
-- Field values read or written by this script, and which of them it must write back. Budget
-- fields are parsed once into B and written back from there (see budget()).
-- A field whose value is set to nil is deleted when written back.
local F, B, dirty = {}, {}, {}
local function set(name, value) F[name] = value; dirty[name] = true end
local function del(name) F[name] = nil; dirty[name] = true end
local function read(names)
  if #names == 0 then return end
  local values = redis.call('HMGET', H, unpack(names))
  for i, name in ipairs(names) do if values[i] then F[name] = values[i] end end
end
-- Field names a script will read, each once: collected with want(), then read together by
-- readWanted(), which reads only the names wanted since it last ran.
local wanted, wantedNames, readUpTo = {}, {}, 0
local function want(name)
  if not wanted[name] then wanted[name] = true; wantedNames[#wantedNames + 1] = name end
end
local function readWanted()
  local fresh = {}
  for i = readUpTo + 1, #wantedNames do fresh[#fresh + 1] = wantedNames[i] end
  readUpTo = #wantedNames
  read(fresh)
end
-- Lua's unpack has a limit on arguments: long lists go in slices.
local function inSlices(command, items)
  for from = 1, #items, 1000 do
    redis.call(command, H, unpack(items, from, math.min(#items, from + 999)))
  end
end

-- A budget field: 'key,spentT,spentU,reservedT,reservedU' for its current period, then the same
-- five for the period before (a reservation made before midnight settles after it).
local BUDGET = '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),?([^,]*),?([^,]*),?([^,]*),?([^,]*),?([^,]*)$'
local function budget(name)
  local b = B[name]
  if b then return b end
  b = {st = 0, su = 0, rt = 0, ru = 0, pst = 0, psu = 0, prt = 0, pru = 0}
  local v = F[name]
  if v then
    local k, st, su, rt, ru, pk, pst, psu, prt, pru = match(v, BUDGET)
    if k then
      b.k, b.st, b.su, b.rt, b.ru = k, num(st), num(su), num(rt), num(ru)
      if pk ~= '' then b.pk, b.pst, b.psu, b.prt, b.pru = pk, num(pst), num(psu), num(prt), num(pru) end
    end
  end
  B[name] = b
  return b
end
local function encodeBudget(b)
  if b.pk then
    return fmt('%s,%d,%d,%d,%d,%s,%d,%d,%d,%d', b.k, b.st, b.su, b.rt, b.ru, b.pk, b.pst, b.psu, b.prt, b.pru)
  end
  return fmt('%s,%d,%d,%d,%d', b.k, b.st, b.su, b.rt, b.ru)
end
local function flush()
  local args, gone = {}, {}
  for name in pairs(dirty) do
    local b = B[name]
    if b then
      args[#args + 1] = name
      args[#args + 1] = encodeBudget(b)
    elseif F[name] == nil then
      gone[#gone + 1] = name
    else
      args[#args + 1] = name
      args[#args + 1] = F[name]
    end
  end
  inSlices('HSET', args)
  inSlices('HDEL', gone)
  dirty = {}
end
-- The four counts of period k as held in field `name` (zeros when it holds neither period).
local function budgetCounts(name, k)
  local b = budget(name)
  if b.k == k then return b.st, b.su, b.rt, b.ru end
  if b.pk == k then return b.pst, b.psu, b.prt, b.pru end
  return 0, 0, 0, 0
end
-- Adds to period k's counts (never below 0). A period newer than the field's current one
-- becomes current (the old current is kept as the previous); an older one than both is gone.
local function addBudget(name, k, dst, dsu, drt, dru)
  local b = budget(name)
  if b.k ~= k and b.pk ~= k then
    if b.k ~= nil and k < b.k then
      if b.pk ~= nil and k < b.pk then return end
      b.pk, b.pst, b.psu, b.prt, b.pru = k, 0, 0, 0, 0
    else
      if b.k ~= nil then b.pk, b.pst, b.psu, b.prt, b.pru = b.k, b.st, b.su, b.rt, b.ru end
      b.k, b.st, b.su, b.rt, b.ru = k, 0, 0, 0, 0
    end
  end
  if b.k == k then
    b.st, b.su = math.max(0, b.st + dst), math.max(0, b.su + dsu)
    b.rt, b.ru = math.max(0, b.rt + drt), math.max(0, b.ru + dru)
  else
    b.pst, b.psu = math.max(0, b.pst + dst), math.max(0, b.psu + dsu)
    b.prt, b.pru = math.max(0, b.prt + drt), math.max(0, b.pru + dru)
  end
  dirty[name] = true
end

-- A reservation's record: its JSON as the gateway wrote it ({e, t, u, c, m, b}); once expired,
-- prefixed 'x<when it is forgotten>|' (re-encoding in Lua could round big numbers).
local function decodeRecord(raw)
  if string.sub(raw, 1, 1) ~= 'x' then return cjson.decode(raw), nil end
  local bar = string.find(raw, '|', 1, true)
  return cjson.decode(string.sub(raw, bar + 1)), tonumber(string.sub(raw, 2, bar - 1))
end
-- Frees what a live reservation holds besides its minute window (which keeps what it used).
local function unreserve(r)
  for _, s in ipairs(r.c) do set('c:' .. s, int(math.max(0, num(F['c:' .. s]) - 1))) end
  for _, b in ipairs(r.b) do addBudget('b:' .. b[1] .. ':' .. b[2], b[3], 0, 0, -r.t, -r.u) end
end

-- Reservations whose ttl has passed (lost processes): their slots and outstanding budget amounts
-- are freed, and the record stays for the grace period so that a late settle still records its
-- spend. Runs only when `next` (the earliest such moment) has come: reads the whole hash once.
local function reap()
  local all = redis.call('HGETALL', H)
  local records = {}
  for i = 1, #all, 2 do
    F[all[i]] = all[i + 1]
    if string.sub(all[i], 1, 2) == 'r:' then records[#records + 1] = all[i] end
  end
  local gone, nextAt = {}, nil
  local function due(at) if nextAt == nil or at < nextAt then nextAt = at end end
  for _, name in ipairs(records) do
    local raw = F[name]
    local r, forgetAt = decodeRecord(raw)
    if forgetAt then
      if forgetAt <= now then gone[#gone + 1] = name else due(forgetAt) end
    elseif r.e <= now then
      unreserve(r)
      set(name, 'x' .. int(now + grace) .. '|' .. raw)
      due(now + grace)
    else
      due(r.e)
    end
  end
  if nextAt then set('next', int(nextAt)) else gone[#gone + 1] = 'next' end
  for _, name in ipairs(gone) do F[name] = nil; dirty[name] = nil end
  inSlices('HDEL', gone)
end
-- Writes back first: reap reads the whole hash, and a batch may hold changes not written yet.
local function reapIfDue()
  if F.next and now >= tonumber(F.next) then
    flush()
    reap()
  end
end
