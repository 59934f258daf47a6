-- Corrects the tokens counted in a minute window by a whole delta (either sign), never below 0.
-- KEYS: the minute window. ARGV: delta. A window no longer there (expired) is left absent.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('HINCRBY', KEYS[1], 't', ARGV[1])
if t < 0 then redis.call('HSET', KEYS[1], 't', 0) end
return 1
