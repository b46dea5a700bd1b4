-- Shared by every pool script (prepended to each by redisStore.ts).
--
-- Layout of one pool (all under the hash tag {pool:<id>}, so a pool lives on one Cluster slot):
--   <p>:{pool:<id>}:meta          hash: cursor, seq, d:<fingerprint> = disabled reason,
--                                       c:<account> = "<untilMs>|<reason>" (cooldown)
--   <p>:{pool:<id>}:r:<account>   zset: request log, score = time ms, member = unique seq
--   <p>:{pool:<id>}:t:<account>   zset: token log, score = time ms, member = "<seq>:<tokens>"
--   <p>:{pool:<id>}:s:<account>   string: sum of the token log (kept with it, same TTL)
-- An entry recorded at t is in the window while t > now - windowMs.

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

-- Set a TTL that never shortens the one the key has (a long cooldown keeps its pool state alive).
local function extendTtl(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

-- Disabled fingerprints, live cooldowns by account name (stale ones are deleted), cursor, seq,
-- and when the last cooldown ends.
local function loadMeta(meta, now)
  local fields = redis.call('HGETALL', meta)
  local disabled, cooling, reasons = {}, {}, {}
  local cursor, seq, lastUntil = 0, 0, now
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
        if untilMs > lastUntil then lastUntil = untilMs end
        reasons[string.sub(f, 3)] = string.sub(v, bar + 1)
      else
        redis.call('HDEL', meta, f)
      end
    elseif f == 'cursor' then
      cursor = tonumber(v)
    elseif f == 'seq' then
      seq = tonumber(v)
    end
  end
  return disabled, cooling, reasons, cursor, seq, lastUntil
end
