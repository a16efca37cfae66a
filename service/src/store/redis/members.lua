-- The cluster's membership: nodes register with a time to live and are
-- listed while it runs, on Redis's clock.
--
-- KEYS[1]  members: a sorted set of node → when its registration ends (ms)
-- KEYS[2]  addresses: node → the address other nodes forward calls to
-- KEYS[3]  serving: node → what it serves (its catalog and models, as the
--          node wrote it: shown by `nudge cluster status`)
-- ARGV[1]  "register" (a node starting: join with no budget units held),
--          "join" (register or renew), "leave", or "list"
-- ARGV[2]  the node
-- ARGV[3]  its address
-- ARGV[4]  the time to live (ms)
-- ARGV[5]  the prefix of the shared keys (the budget grants live there)
-- ARGV[6]  with "register" and "join": what the node serves
--
-- A node that leaves, or whose registration ends, gives back the budget
-- units granted to it (see apply.lua), so no budget stays held by a node
-- that cannot serve it.
--
-- Returns the live nodes after the change: node, address, ends, serving, …

local prefix = ARGV[5]

local function return_grants(node)
  local key = prefix .. ':grants:' .. node
  local held = redis.call('HGETALL', key)
  for index = 1, #held, 2 do
    local left = redis.call('HINCRBY', prefix .. ':granted', held[index], -tonumber(held[index + 1]))
    if left <= 0 then
      redis.call('HDEL', prefix .. ':granted', held[index])
    end
  end
  redis.call('DEL', key)
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, gone in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', '(' .. now, 'BYSCORE')) do
  redis.call('ZREM', KEYS[1], gone)
  redis.call('HDEL', KEYS[2], gone)
  redis.call('HDEL', KEYS[3], gone)
  return_grants(gone)
end
if ARGV[1] == 'register' then
  return_grants(ARGV[2])
end
if ARGV[1] == 'join' or ARGV[1] == 'register' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[6] or '')
elseif ARGV[1] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return_grants(ARGV[2])
end
local listed = {}
for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  listed[#listed + 1] = node
  listed[#listed + 1] = redis.call('HGET', KEYS[2], node) or ''
  listed[#listed + 1] = redis.call('ZSCORE', KEYS[1], node)
  listed[#listed + 1] = redis.call('HGET', KEYS[3], node) or ''
end
return listed
