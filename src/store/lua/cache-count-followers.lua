-- Runs after cache-followers.lua (see lua-script.ts).
-- Followers whose mark has not lapsed. KEYS: followers.
return marked(KEYS[1], now_ms())
