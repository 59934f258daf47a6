-- Runs after cache-followers.lua (see lua-script.ts).
-- Appends to the live record while the lock is still ours, renewing both: a leader that keeps
-- streaming keeps its claim, and one whose claim went to another can no longer write. Answers
-- the followers marked now (0 when nothing was written), so each flush tells the leader whether
-- anyone elsewhere still reads. KEYS: lock, live, followers. ARGV: token, ttl ms, end ('' or
-- complete/broken), blocks...
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 4, #ARGV do redis.call('XADD', KEYS[2], '*', 'b', ARGV[i]) end
if ARGV[3] ~= '' then redis.call('XADD', KEYS[2], '*', 'end', ARGV[3]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return marked(KEYS[3], now_ms())
