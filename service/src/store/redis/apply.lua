-- One ordered batch of writes to one partition of nudge's Redis store, applied
-- atomically: either the whole batch (when its fencing token is current) or
-- nothing.
--
-- Every key shares the partition's hash tag, so the batch runs on one node.
-- The keys are named from ARGV[1], the partition's prefix (`<ns>:{p<n>}`), and
-- all live in the slot of KEYS[1], the partition's lease.
--
-- ARGV[1]  the partition's key prefix
-- ARGV[2]  the writer's fencing token ("" for the budget counters, which have
--          no owner: their changes are idempotent deltas)
-- ARGV[3]  the number of operations, then each operation's code and arguments:
--   S customer state timer       state; timer "" untouched, "-" cleared, else due ms
--   F customer                   forget the state        -> {1 if any was stored}
--   D member customer record     a decision
--   O member customer id record  an outcome of the decision `member`, once per id
--   E customer ordinal time record  an applied event (ordinal: 20 digits; time:
--                                the sortable time applied, 20 digits)
--   X customer                   forget the customer's log -> {decisions, outcomes, events}
--   C count member...            compact decisions       -> {decisions, outcomes}
--   K count member...            compact events          -> {0, 0, events}
--   B action delta id node       a budget change, once per id (24 h); units
--                                taken (delta > 0) come out of `node`'s grant
--   G node action limit delta    grant `node` up to delta more units of the
--                                budget (delta < 0: take back up to -delta),
--                                never past limit - used - granted to anyone
--                                -> {units granted (negative: taken back),
--                                    used, free after}
--   H node                       read `node`'s grants -> action, units, …
--   M model features             a model version's feature specs
--   R                            read the budget counters -> field, value, …
--   L customer                   read the customer's state -> {state} or {}
--                                (fenced like a write: a primary that came
--                                back stale after a failover is not read)
--
-- A decision member is the decision's sortable time (20 digits), its id's
-- length (4 hex digits), its id and its customer. A customer's events are a
-- hash of ordinal to the sortable time applied and the record; the
-- partition's time index holds the sortable time, the ordinal and the
-- customer.
-- Outcomes of one decision are kept together as frames: the id's length
-- (8 hex digits), the id, the record's length, the record.
--
-- Returns one {a, b, c} per operation (zeros where nothing is counted), or
-- the error `FENCED <current token>` when the token is stale.

local prefix = ARGV[1]
local token = ARGV[2]
if token ~= '' then
  local current = redis.call('HGET', KEYS[1], 'token')
  if current ~= token then
    return redis.error_reply('FENCED ' .. tostring(current or 0))
  end
end


local state_key = prefix .. ':state'
local timers_key = prefix .. ':timers'
local decisions_key = prefix .. ':dlog'
local records_key = prefix .. ':dec'
local outcomes_key = prefix .. ':out'
local event_times_key = prefix .. ':et'
local event_customers_key = prefix .. ':ec'
local budgets_key = prefix .. ':budgets'
-- Budget units granted to nodes and not used yet: in all, and per node.
local granted_key = prefix .. ':granted'

local function grants_of(node)
  return prefix .. ':grants:' .. node
end

-- Adds `delta` to `field` of hash `key`, deleting it at zero or below.
local function add(key, field, delta)
  local value = redis.call('HINCRBY', key, field, delta)
  if value <= 0 then
    redis.call('HDEL', key, field)
  end
  return value
end

local function number(value)
  return tonumber(value or 0) or 0
end

local function customer_decisions(customer)
  return prefix .. ':cd:' .. customer
end

local function customer_events(customer)
  return prefix .. ':ev:' .. customer
end

local function decision_customer(member)
  local id_length = tonumber(string.sub(member, 21, 24), 16)
  return string.sub(member, 25 + id_length)
end

-- The frames of `blob` as a list of {id, record}.
local function frames(blob)
  local list = {}
  local at = 1
  while at <= #blob do
    local id_length = tonumber(string.sub(blob, at, at + 7), 16)
    local id = string.sub(blob, at + 8, at + 7 + id_length)
    at = at + 8 + id_length
    local record_length = tonumber(string.sub(blob, at, at + 7), 16)
    at = at + 8 + record_length
    list[#list + 1] = id
  end
  return list
end

local function frame(text)
  return string.format('%08x', #text) .. text
end

-- Deletes one decision and its outcomes; returns {decisions, outcomes}.
local function delete_decision(member)
  local decisions = redis.call('HDEL', records_key, member)
  local outcomes = 0
  local blob = redis.call('HGET', outcomes_key, member)
  if blob then
    outcomes = #frames(blob)
    redis.call('HDEL', outcomes_key, member)
  end
  redis.call('ZREM', decisions_key, member)
  return decisions, outcomes
end

local results = {}
local count = tonumber(ARGV[3])
local at = 4
local reads = {R = true, H = true, L = true}
local writes = false
for _ = 1, count do
  local code = ARGV[at]
  if not reads[code] then
    writes = true
  end
  local result = {0, 0, 0}
  if code == 'S' then
    local customer, state, timer = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    redis.call('HSET', state_key, customer, state)
    if timer == '-' then
      redis.call('ZREM', timers_key, customer)
    elseif timer ~= '' then
      redis.call('ZADD', timers_key, timer, customer)
    end
    at = at + 4
  elseif code == 'F' then
    local customer = ARGV[at + 1]
    result[1] = redis.call('HDEL', state_key, customer)
    redis.call('ZREM', timers_key, customer)
    at = at + 2
  elseif code == 'D' then
    local member, customer, record = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    redis.call('ZADD', decisions_key, 0, member)
    redis.call('HSET', records_key, member, record)
    redis.call('SADD', customer_decisions(customer), member)
    at = at + 4
  elseif code == 'O' then
    local member, customer, id, record = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
    local blob = redis.call('HGET', outcomes_key, member) or ''
    local seen = false
    for _, existing in ipairs(frames(blob)) do
      if existing == id then
        seen = true
        break
      end
    end
    if not seen then
      redis.call('HSET', outcomes_key, member, blob .. frame(id) .. frame(record))
      redis.call('SADD', customer_decisions(customer), member)
    end
    at = at + 5
  elseif code == 'E' then
    local customer, ordinal, time, record = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
    redis.call('HSET', customer_events(customer), ordinal, time .. record)
    redis.call('ZADD', event_times_key, 0, time .. ordinal .. customer)
    redis.call('ZADD', event_customers_key, 0, customer)
    at = at + 5
  elseif code == 'X' then
    local customer = ARGV[at + 1]
    local index = customer_decisions(customer)
    for _, member in ipairs(redis.call('SMEMBERS', index)) do
      local decisions, outcomes = delete_decision(member)
      result[1] = result[1] + decisions
      result[2] = result[2] + outcomes
    end
    redis.call('DEL', index)
    local events = customer_events(customer)
    local stored = redis.call('HGETALL', events)
    for index = 1, #stored, 2 do
      local ordinal, value = stored[index], stored[index + 1]
      redis.call('ZREM', event_times_key, string.sub(value, 1, 20) .. ordinal .. customer)
      result[3] = result[3] + 1
    end
    redis.call('DEL', events)
    redis.call('ZREM', event_customers_key, customer)
    at = at + 2
  elseif code == 'C' then
    local members = tonumber(ARGV[at + 1])
    for index = 1, members do
      local member = ARGV[at + 1 + index]
      local decisions, outcomes = delete_decision(member)
      result[1] = result[1] + decisions
      result[2] = result[2] + outcomes
      redis.call('SREM', customer_decisions(decision_customer(member)), member)
    end
    at = at + 2 + members
  elseif code == 'K' then
    local members = tonumber(ARGV[at + 1])
    for index = 1, members do
      local member = ARGV[at + 1 + index]
      local ordinal = string.sub(member, 21, 40)
      local customer = string.sub(member, 41)
      local events = customer_events(customer)
      result[3] = result[3] + redis.call('HDEL', events, ordinal)
      redis.call('ZREM', event_times_key, member)
      if redis.call('EXISTS', events) == 0 then
        redis.call('ZREM', event_customers_key, customer)
      end
    end
    at = at + 2 + members
  elseif code == 'B' then
    local action, delta, id, node = ARGV[at + 1], tonumber(ARGV[at + 2]), ARGV[at + 3], ARGV[at + 4]
    if redis.call('SET', prefix .. ':applied:' .. id, '1', 'NX', 'PX', 86400000) then
      add(budgets_key, action, delta)
      if delta > 0 and node ~= '' then
        local held = number(redis.call('HGET', grants_of(node), action))
        local spent = math.min(delta, held)
        if spent > 0 then
          add(grants_of(node), action, -spent)
          add(granted_key, action, -spent)
        end
      end
    end
    at = at + 5
  elseif code == 'G' then
    local node, action, limit, delta = ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
    local used = number(redis.call('HGET', budgets_key, action))
    local granted = number(redis.call('HGET', granted_key, action))
    local change = 0
    if delta > 0 then
      change = math.max(0, math.min(delta, limit - used - granted))
    elseif delta < 0 then
      change = -math.min(-delta, number(redis.call('HGET', grants_of(node), action)))
    end
    if change ~= 0 then
      add(grants_of(node), action, change)
      granted = add(granted_key, action, change)
      if granted < 0 then
        granted = 0
      end
    end
    result = {change, used, math.max(0, limit - used - granted)}
    at = at + 5
  elseif code == 'H' then
    result = redis.call('HGETALL', grants_of(ARGV[at + 1]))
    at = at + 2
  elseif code == 'R' then
    result = redis.call('HGETALL', budgets_key)
    at = at + 1
  elseif code == 'L' then
    local state = redis.call('HGET', state_key, ARGV[at + 1])
    result = state and {state} or {}
    at = at + 2
  elseif code == 'M' then
    redis.call('HSET', prefix .. ':features', ARGV[at + 1], ARGV[at + 2])
    at = at + 3
  else
    return redis.error_reply('UNKNOWN operation ' .. tostring(code))
  end
  results[#results + 1] = result
end
-- A call that writes always changes something, even when its operations
-- all find their work done (a call run again after a lost answer): a WAIT
-- after it then covers the replication of the first run too. A call that
-- only reads writes nothing (a load costs no AOF fsync).
if writes then
  redis.call('INCR', prefix .. ':calls')
end
return results
