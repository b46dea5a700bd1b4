-- Shared by every pool script (prepended to each by redisStore.ts).
--
-- Layout of one pool (all under the hash tag {pool:<id>}, so a pool lives on one Cluster slot):
--   <p>:{pool:<id>}:meta          hash: cursor, seq,
--                                       d:<fingerprint> = disabled reason,
--                                       c:<account> = "<untilMs>|<reason>" (cooldown),
--                                       a:<account> = "<bucket>:<req>:<prevReq>:<tok>:<prevTok>"
--                                                     (estimates for unlimited limits, below)
--   <p>:{pool:<id>}:r:<account>   zset: request log, score = time ms, member = unique seq
--   <p>:{pool:<id>}:t:<account>   zset: token log, score = time ms, member = "<seq>:<tokens>"
--   <p>:{pool:<id>}:s:<account>   string: sum of the token log (kept with it, same TTL)
-- An entry recorded at t is in the window while t > now - windowMs.
--
-- Limited counts (rpm/tpm > 0) are exact sliding logs. Unlimited ones only feed status and
-- least-loaded, and an exact log of an unlimited stream grows without bound, so they use the
-- sliding-window-counter estimate: this window-aligned bucket plus the previous bucket
-- weighted by how much of it still overlaps the window. memoryStore.ts computes the same.
-- They live in the meta hash, which every pick reads and writes anyway: no extra calls.

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

-- Estimates of an account (from its a:<account> field, or nil), shifted to now's bucket.
local function approxLoad(raw, now, windowMs)
  local bucket = math.floor(now / windowMs)
  local st = { w = bucket, c = 0, p = 0, tc = 0, tp = 0 }
  if raw then
    local w, c, p, tc, tp = string.match(raw, '^(%-?%d+):(%d+):(%d+):(%d+):(%d+)$')
    w = tonumber(w)
    if w and w >= bucket then
      st.w, st.c, st.p, st.tc, st.tp = w, tonumber(c), tonumber(p), tonumber(tc), tonumber(tp)
    elseif w == bucket - 1 then
      st.p, st.tp = tonumber(c), tonumber(tc)
    end
  end
  st.remaining = windowMs - (now - bucket * windowMs)
  st.windowMs = windowMs
  return st
end

local function approxRequests(st)
  return st.c + math.floor(st.p * st.remaining / st.windowMs)
end

local function approxTokens(st)
  return st.tc + math.floor(st.tp * st.remaining / st.windowMs)
end

-- Plain concatenation: all five are integers well under 1e14, which Lua prints without exponent.
local function approxEncode(st)
  return st.w .. ':' .. st.c .. ':' .. st.p .. ':' .. st.tc .. ':' .. st.tp
end

-- Set a TTL that never shortens the one the key has (a long cooldown keeps its pool state alive).
local function extendTtl(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

-- Everything in the meta hash: disabled reasons by fingerprint; live cooldowns and their
-- reasons by account (ended ones are deleted); raw estimates by account; cursor; seq; and
-- when the last cooldown ends.
local function loadMeta(meta, now)
  local fields = redis.call('HGETALL', meta)
  local disabled, cooling, reasons, approxRaw = {}, {}, {}, {}
  local cursor, seq, lastUntil = 0, 0, now
  for i = 1, #fields, 2 do
    local f, v = fields[i], fields[i + 1]
    local p = string.sub(f, 1, 2)
    if p == 'a:' then
      approxRaw[string.sub(f, 3)] = v
    elseif p == 'd:' then
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
    end
  end
  return { disabled = disabled, cooling = cooling, reasons = reasons, approx = approxRaw, cursor = cursor, seq = seq, lastUntil = lastUntil }
end
