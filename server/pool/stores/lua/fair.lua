-- Fair share among users and the wait queue (issue 22). Prepended to pick.lua after common.lua;
-- memoryStore.ts (fairState.ts) computes exactly the same.
--
--   <p>:{pool:<id>}:fair   hash: "n:<user>" = requests served to the user in the window (kept in
--                          step with the log below), "w:<user>" = weight, "a:<user>" = last time
--                          the user asked while the pool was scarce
--   <p>:{pool:<id>}:ulog   zset: the log of requests served to named users, score = time ms,
--                          member = "<seq>|<user>": the same sliding window as the account logs,
--                          so a user's use and the pool's free capacity agree at every instant
--   <p>:{pool:<id>}:queue  zset of waiters: score = (use + own waiters already queued) / weight
--                          when it joined (the least-served user first), member =
--                          "<seq, 15 digits>|<joinedAt>|<deadline>|<user>" (equal scores: arrival)
--   meta "q" = 1 while the queue may be non-empty, "fs" = when the pool last refused for lack of
--   capacity. A pool is scarce for two windows after a refusal (one window of hysteresis, so
--   fairness does not flap on and off at the edge of capacity); one that is not skips all of
--   this but the counting of named users' requests.
--
-- Shares are compared in integers (use * W against capacity * weight, W the active users'
-- weights summed), so the order users are summed in changes nothing.

-- Drop log entries that left the window and take them off their users' counts; amortised O(1)
-- per entry, like trimTokens.
local function fairTrim(fairKey, ulogKey, cutoff)
  local old = redis.call('ZRANGEBYSCORE', ulogKey, '-inf', fmt(cutoff))
  if #old == 0 then return end
  local gone = {}
  for i = 1, #old do
    local u = string.match(old[i], '^%d+|(.*)$')
    gone[u] = (gone[u] or 0) + 1
  end
  for u, c in pairs(gone) do
    if redis.call('HINCRBY', fairKey, 'n:' .. u, -c) <= 0 then redis.call('HDEL', fairKey, 'n:' .. u) end
  end
  redis.call('ZREMRANGEBYSCORE', ulogKey, '-inf', fmt(cutoff))
end

-- Count one request served to `user` (seq: the pick's, unique). The first of a user in the
-- window also writes its weight.
local function fairCount(fairKey, ulogKey, now, cutoff, seq, user, weight, ttlMs)
  redis.call('ZADD', ulogKey, now, seq .. '|' .. user)
  if redis.call('HINCRBY', fairKey, 'n:' .. user, 1) == 1 then redis.call('HSET', fairKey, 'w:' .. user, weight) end
  if (seq + now) % 8 == 0 then fairTrim(fairKey, ulogKey, cutoff) end
  if seq % 64 == 1 then
    redis.call('PEXPIRE', fairKey, ttlMs)
    redis.call('PEXPIRE', ulogKey, ttlMs)
  end
end

-- Active users (served within the window, or asked while scarce): use and weight by name.
-- Users neither served nor asking within the window are forgotten here.
local function fairUsers(fairKey, ulogKey, now, windowMs)
  local cutoff = now - windowMs
  fairTrim(fairKey, ulogKey, cutoff)
  local raw = redis.call('HGETALL', fairKey)
  local use, weights, asked = {}, {}, {}
  for i = 1, #raw, 2 do
    local f, v = raw[i], raw[i + 1]
    local p, u = string.sub(f, 1, 2), string.sub(f, 3)
    if p == 'n:' then use[u] = tonumber(v)
    elseif p == 'w:' then weights[u] = tonumber(v)
    elseif p == 'a:' then asked[u] = tonumber(v) end
  end
  local active = {}
  for u, w in pairs(weights) do
    if (use[u] or 0) > 0 or (asked[u] or 0) > cutoff then
      active[u] = w
    else
      redis.call('HDEL', fairKey, 'w:' .. u, 'a:' .. u)
    end
  end
  for u, n in pairs(use) do
    if active[u] == nil and n > 0 then active[u] = 1 end
  end
  return use, active
end

-- Whether `user` may take a slot now: under its share, or the free slots exceed what the active
-- under-share users can still claim. `capacity` > 0 and `free` >= 1 here.
local function fairAllows(use, active, user, capacity, free)
  local total = 0
  for _, w in pairs(active) do total = total + w end
  local mine = use[user] or 0
  if mine * total < capacity * active[user] then return true end
  local claim = 0
  for u, w in pairs(active) do
    if u ~= user then
      local left = capacity * w - (use[u] or 0) * total
      if left > 0 then claim = claim + left end
    end
  end
  return free * total > claim
end

local function parseWaiter(member)
  local seq, joined, deadline, user = string.match(member, '^(%d+)|(%d+)|(%d+)|(.*)$')
  return tonumber(joined), tonumber(deadline), user
end

-- Waiters whose deadline passed (their instance died, or they gave up unseen) leave from the
-- head; returns the queue's length, 0 when it is empty (then the meta flag goes).
local function queueTrim(queueKey, meta, now)
  for _ = 1, 32 do
    local head = redis.call('ZRANGE', queueKey, 0, 0)
    if #head == 0 then
      redis.call('HDEL', meta, 'q')
      return 0
    end
    local _, deadline = parseWaiter(head[1])
    if deadline > now then break end
    redis.call('ZREM', queueKey, head[1])
  end
  return redis.call('ZCARD', queueKey)
end

-- Join the queue at the user's fair place; returns the member (the waiter's ticket).
local function queueJoin(queueKey, meta, now, seq, waitMs, user, weight, use)
  local mine = 0
  if user ~= '' then
    local all = redis.call('ZRANGE', queueKey, 0, -1)
    local suffix = '|' .. user
    for i = 1, #all do
      if string.sub(all[i], -#suffix) == suffix then
        local _, _, u = parseWaiter(all[i])
        if u == user then mine = mine + 1 end
      end
    end
  end
  local member = string.format('%015d', seq) .. '|' .. fmt(now) .. '|' .. fmt(now + waitMs) .. '|' .. user
  redis.call('ZADD', queueKey, ((use or 0) + mine) / weight, member)
  redis.call('PEXPIRE', queueKey, waitMs + 60000)
  redis.call('HSET', meta, 'q', 1)
  return member
end
