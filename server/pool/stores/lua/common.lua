-- Shared by every pool script (prepended to each by redisStore.ts).
--
-- Layout of one pool (all under the hash tag {pool:<id>}, so a pool lives on one Cluster slot):
--   <p>:{pool:<id>}:meta          hash: cursor, seq,
--                                       d:<fingerprint> = disabled reason,
--                                       c:<account> = "<untilMs>|<reason>" (cooldown),
--                                       l:<account> = learned limits (issue 22, see parseLearned)
--   <p>:{pool:<id>}:load          hash: "<bucket>:r:<account>" = requests counted in the bucket,
--                                       "<bucket>:t:<account>" = tokens (unlimited limits, below)
--   <p>:{pool:<id>}:def:<version> string: the pool definition pick.lua reads (see its header)
--   <p>:{pool:<id>}:r:<account>   zset: request log, score = time ms, member = unique seq
--   <p>:{pool:<id>}:t:<account>   zset: token log, score = time ms, member = "<seq>:<tokens>"
--   <p>:{pool:<id>}:s:<account>   string: sum of the token log (kept with it, same TTL)
--   <p>:{pool:<id>}:fair, :ulog, :queue  fair share and the wait queue (issue 22): see fair.lua
-- An entry recorded at t is in the window while t > now - windowMs.
--
-- Limited counts (rpm/tpm > 0) are exact sliding logs. Unlimited ones only feed status and
-- least-loaded, and an exact log of an unlimited stream grows without bound, so they use the
-- sliding-window-counter estimate: this window-aligned bucket plus the previous bucket
-- weighted by how much of it still overlaps the window. memoryStore.ts computes the same.
-- They live in their own hash as plain counters, so a round-robin pick counts with one HINCRBY
-- and reads nothing (issue #8: parsing and re-encoding estimate strings kept in the meta hash
-- was about a third of the pick script's time with eight accounts).

local function clockNow(given)
  local n = tonumber(given)
  if n then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%d', n)
end

local function tokenOf(member)
  return tonumber(string.match(member, ':(%d+)$')) or 0
end

-- Drop token entries that left the window and keep the running sum in step; returns the sum.
-- Amortised O(1) per entry: each is read once when it expires.
local function trimTokens(tlog, tsum, cutoff)
  local sum = tonumber(redis.call('GET', tsum) or '0') or 0
  local old = redis.call('ZRANGEBYSCORE', tlog, '-inf', fmt(cutoff))
  if #old > 0 then
    local gone = 0
    for j = 1, #old do gone = gone + tokenOf(old[j]) end
    redis.call('ZREMRANGEBYSCORE', tlog, '-inf', fmt(cutoff))
    sum = redis.call('DECRBY', tsum, gone)
    if sum <= 0 then
      sum = 0
      redis.call('DEL', tsum)
    end
  end
  return sum
end

-- Estimates of unlimited counts live in the load hash as one counter per window-aligned bucket:
-- field "<bucket>:<kind>:<account>", kind 'r' (requests) or 't' (tokens). Counting is one
-- HINCRBY, no read or parse; the estimate reads this bucket and the previous one.
local function bucketOf(now, windowMs)
  return math.floor(now / windowMs)
end

-- Count `amount` for an account. The first count of an account in a bucket (about once per
-- window) also drops the buckets that left the window and refreshes the hash's TTL.
local function countLoad(loadKey, now, windowMs, kind, account, amount, ttlMs)
  local bucket = bucketOf(now, windowMs)
  local value = redis.call('HINCRBY', loadKey, bucket .. ':' .. kind .. ':' .. account, amount)
  if value == amount then
    local fields = redis.call('HKEYS', loadKey)
    for i = 1, #fields do
      local b = tonumber(string.match(fields[i], '^(%d+):'))
      if b == nil or b < bucket - 1 then redis.call('HDEL', loadKey, fields[i]) end
    end
    redis.call('PEXPIRE', loadKey, ttlMs)
  end
end

-- Estimated counts of `kind` for accounts (a list of names), in one HMGET: this bucket plus the
-- previous one weighted by how much of it still overlaps the window.
local function estimateLoads(loadKey, now, windowMs, kind, accounts)
  local bucket = bucketOf(now, windowMs)
  local fields = {}
  for a = 1, #accounts do
    fields[2 * a - 1] = bucket .. ':' .. kind .. ':' .. accounts[a]
    fields[2 * a] = (bucket - 1) .. ':' .. kind .. ':' .. accounts[a]
  end
  local raw = redis.call('HMGET', loadKey, unpack(fields))
  local remaining = windowMs - (now - bucket * windowMs)
  local out = {}
  for a = 1, #accounts do
    out[a] = (tonumber(raw[2 * a - 1]) or 0) + math.floor((tonumber(raw[2 * a]) or 0) * remaining / windowMs)
  end
  return out
end

-- Set a TTL that never shortens the one the key has (a long cooldown keeps its pool state alive).
local function extendTtl(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

-- Learned limits (issue 22): what the provider stated about an account's windows, in the meta
-- hash (so a pick reads them with the HGETALL it makes anyway, and a pool that learned nothing
-- pays nothing) as "rl|rr|ro|rt|tl|tr|to|tt", '' for unknown: per window (requests r, tokens
-- t) the stated limit, the remaining it reported, when the request that reported it was sent
-- (picks after it are not in that remaining) and when the remaining stops applying (reset).
-- A window is known once it has an observation time (field 3 / 7). learnedLimits.ts (the
-- memory store's) merges the same way.
local function parseLearned(raw)
  local v = {}
  local from = 1
  for i = 1, 8 do
    local bar = string.find(raw, '|', from, true)
    v[i] = tonumber(bar and string.sub(raw, from, bar - 1) or string.sub(raw, from))
    from = bar and bar + 1 or #raw + 1
  end
  return v
end

local function encodeLearned(v)
  local out = {}
  for i = 1, 8 do out[i] = v[i] ~= nil and fmt(v[i]) or '' end
  return table.concat(out, '|')
end

-- Merge one observation {sinceMs, rLimit, rRemaining, rResetInMs, tLimit, tRemaining, tResetInMs}
-- (nil = not said) into v. The limit stays until another is stated; what is left is the most
-- recently sent request's; without a reset it holds one window from the observation.
local function mergeLearned(v, obs, now, windowMs)
  local observedAt = now - math.max(0, obs[1] or 0)
  for w = 0, 1 do
    local limit, remaining, resetIn = obs[2 + 3 * w], obs[3 + 3 * w], obs[4 + 3 * w]
    if limit ~= nil or remaining ~= nil then
      local previousAt = v[3 + 4 * w]
      if previousAt == nil or observedAt >= previousAt then
        if limit ~= nil then v[1 + 4 * w] = limit end
        v[2 + 4 * w] = remaining
        v[3 + 4 * w] = observedAt
        v[4 + 4 * w] = resetIn ~= nil and (now + resetIn) or (observedAt + windowMs)
      end
    end
  end
end

-- The limit in force: the configured one (0 = none) unless the provider stated a lower one.
local function effectiveLimit(configured, learned)
  if learned == nil then return configured end
  if configured > 0 and configured <= learned then return configured end
  return learned
end

-- Everything in the meta hash: disabled reasons by fingerprint; live cooldowns and their
-- reasons by account (ended ones are deleted); learned limits by account (raw); cursor; seq;
-- and when the last cooldown ends.
local function loadMeta(meta, now)
  local fields = redis.call('HGETALL', meta)
  local disabled, cooling, reasons, learned = {}, {}, {}, {}
  local anyLearned, anyRequestsLimit = false, false
  local cursor, seq, lastUntil = 0, 0, now
  -- Issue 22 (fair.lua): 'q' while the wait queue may hold someone, 'fs' the last refusal for
  -- lack of capacity. Read here, with the rest, so a pick with an empty queue costs no extra call.
  local queued, scarceAt = false, 0
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    local p = string.sub(f, 1, 2)
    if p == 'd:' then
      disabled[string.sub(f, 3)] = v
    elseif p == 'c:' then
      local bar = string.find(v, '|', 1, true)
      local untilMs = tonumber(string.sub(v, 1, bar - 1))
      if untilMs > now then
        cooling[string.sub(f, 3)] = untilMs
        reasons[string.sub(f, 3)] = string.sub(v, bar + 1)
        if untilMs > lastUntil then lastUntil = untilMs end
      else
        redis.call('HDEL', meta, f)
      end
    elseif f == 'cursor' then
      cursor = tonumber(v)
    elseif f == 'seq' then
      seq = tonumber(v)
    elseif p == 'l:' then
      learned[string.sub(f, 3)] = v
      anyLearned = true
      -- A stated requests limit (the first field, see parseLearned, is set: no leading '|').
      if string.byte(v, 1) ~= 124 then anyRequestsLimit = true end
    elseif f == 'q' then
      queued = true
    elseif f == 'fs' then
      scarceAt = tonumber(v)
    end
  end
  return { disabled = disabled, cooling = cooling, reasons = reasons, learned = learned, anyLearned = anyLearned, anyRequestsLimit = anyRequestsLimit, cursor = cursor, seq = seq, lastUntil = lastUntil, queued = queued, scarceAt = scarceAt }
end
