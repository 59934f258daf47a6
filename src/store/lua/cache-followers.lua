-- Followers of a live stream on other instances: a sorted set, member = a follower's id, score =
-- when its mark lapses, in Redis's own clock (instances whose clocks differ still agree on it).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Marks that have not lapsed at `now`.
local function marked(key, now)
  return redis.call('ZCOUNT', key, string.format('(%d', now), '+inf')
end
