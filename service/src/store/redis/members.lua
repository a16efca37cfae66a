-- The cluster's membership: nodes register with a time to live and are
-- listed while it runs, on Redis's clock.
--
-- KEYS[1]  members: a sorted set of node → when its registration ends (ms)
-- KEYS[2]  addresses: node → the address other nodes forward calls to
-- ARGV[1]  "join" (register or renew), "leave", or "list"
-- ARGV[2]  the node
-- ARGV[3]  its address
-- ARGV[4]  the time to live (ms)
--
-- Returns the live nodes after the change: node, address, ends, …

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, gone in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', '(' .. now, 'BYSCORE')) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('HDEL', KEYS[2], gone)
end
if ARGV[1] == 'join' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
elseif ARGV[1] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
local listed = {}
for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  listed[#listed + 1] = node
  listed[#listed + 1] = redis.call('HGET', KEYS[2], node) or ''
  listed[#listed + 1] = redis.call('ZSCORE', KEYS[1], node)
end
return listed
