-- A partition's lease, the rules of `nudge_models::cluster::Lease` applied
-- on the server with the server's clock, so nodes need no agreement on time.
--
-- KEYS[1]  the partition's lease: a hash of holder, token, expires (ms)
-- ARGV[1]  "acquire" or "release"
-- ARGV[2]  the node asking
-- ARGV[3]  acquire: the lease time (ms); release: the token held
--
-- acquire -> {1, token, expires} taken or renewed, {0, holder, expires} refused:
--   none, or an expired one (whoever held it): the next token;
--   the node's own, unexpired: renewed, same token, new expiry;
--   another node's, unexpired: refused.
-- release -> {1, token, now} expired at once (the token stays, so the next
--   holder's is larger), {0, current token, expires} when the token is not
--   the current one.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
local holder = lease[1]
local token = tonumber(lease[2] or '0')
local expires = tonumber(lease[3] or '0')
local node = ARGV[2]

if ARGV[1] == 'acquire' then
  local ttl = tonumber(ARGV[3])
  if holder and expires > now and holder ~= node then
    return {0, holder, expires}
  end
  if not holder or expires <= now then
    token = token + 1
  end
  redis.call('HSET', KEYS[1], 'holder', node, 'token', token, 'expires', now + ttl)
  return {1, tostring(token), now + ttl}
elseif ARGV[1] == 'release' then
  if tostring(token) ~= ARGV[3] then
    return {0, tostring(token), expires}
  end
  redis.call('HSET', KEYS[1], 'expires', now)
  return {1, tostring(token), now}
end
return redis.error_reply('UNKNOWN lease operation ' .. tostring(ARGV[1]))
