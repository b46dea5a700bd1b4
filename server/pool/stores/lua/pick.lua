-- Pick a key by the pool's strategy and count the request, in one atomic round trip.
-- KEYS[1] = meta, KEYS[2] = load, KEYS[3] = the pool definition (<p>:{pool:<id>}:def:<version>);
--   pools with an rpm or tpm limit also pass, per account a (1-based): KEYS[3a+1] request log,
--   KEYS[3a+2] token log, KEYS[3a+3] token sum (unlimited pools touch no per-account key)
-- ARGV[1] = now ('' = Redis TIME), ARGV[2] = the definition as JSON, sent only after a {-2}
--   reply ('' otherwise): [windowMs, rpm, tpm, strategy 'r'|'l', metaTtlMs, logTtlMs,
--   [account names], [fingerprints in key order], [account index (1-based) of each key]]
-- Issue 22 (fair.lua), all optional: ARGV[3] = user ('' = none: no fair share), ARGV[4] = its
--   weight, ARGV[5] = the waiter's ticket ('' = a newcomer), ARGV[6] = the queue's max length
--   (0 = no waiting), ARGV[7] = how long this request may still wait, ms.
-- Returns {1, fingerprint} | {0, retryAfterMs} | {-1} (no key can ever serve)
--       | {-2} (this Redis does not hold the definition: send it)
--       | {-3} (an account learned limits (issue 22) but the call left out the account keys:
--              send them, as for a limited pool, from now on)
--       | {3, retryAfterMs, ticket} (waiting in the queue: pick again with the ticket then)
--
-- Why the definition lives in Redis: a pick used to carry the whole pool (every key's
-- fingerprint and account, every account's three key names) as ~60 arguments, and encoding,
-- sending and parsing them cost more than the decision itself (issue #8). Its key name holds a
-- hash of its content, so instances running different configurations (a rolling reload) each
-- find their own and never overwrite another's; an unknown or expired one costs one retry.
--
-- Every redis.call costs more than its command, so the hot path makes few: TIME, GET of the
-- definition, HGETALL of meta, one ZCOUNT per account looked at (limited rpm; least-loaded on
-- unlimited rpm reads all estimates in one HMGET), then the writes.

local meta, loadKey, defKey = KEYS[1], KEYS[2], KEYS[3]
local now = clockNow(ARGV[1])
local defJson = ARGV[2]
if defJson == '' then
  defJson = redis.call('GET', defKey)
  if not defJson then return {-2} end
end
local def = cjson.decode(defJson)
local windowMs, rpm, tpm = def[1], def[2], def[3]
local leastLoaded = def[4] == 'l'
local metaTtlMs, logTtlMs = def[5], def[6]
local accountNames, fingerprints, accountOfKey = def[7], def[8], def[9]
if ARGV[2] ~= '' then redis.call('SET', defKey, defJson, 'PX', metaTtlMs) end
local n = #fingerprints
if n < 1 then return {-1} end
local cutoff = now - windowMs
-- Number-to-string costs show in a hot script: only limited windows need the cutoff as text.
local openCutoff = (rpm > 0 or tpm > 0) and '(' .. fmt(cutoff) or nil

local state = loadMeta(meta, now)
local disabled, cooling = state.disabled, state.cooling
-- Learned limits (issue 22). None: nothing below costs more than before.
local anyLearned = state.anyLearned
if anyLearned then
  if #KEYS <= 3 then return {-3} end
  if openCutoff == nil then openCutoff = '(' .. fmt(cutoff) end
end
local learnedMemo = {}
-- The account's parsed learned limits, or false.
local function learnedOf(a)
  local l = learnedMemo[a]
  if l == nil then
    local raw = state.learned[accountNames[a]]
    l = raw and parseLearned(raw) or false
    learnedMemo[a] = l
  end
  return l
end
-- A learned requests window counts exact picks whatever the configured rpm.
local function exactRequests(a)
  if rpm > 0 then return true end
  if not anyLearned then return false end
  local l = learnedOf(a)
  return l and l[3] ~= nil
end
-- Entries of a log after an observation's request was sent (its own pick is in the provider's
-- remaining already), within the window; learnedLimits' memory store counts the same.
local function since(t0)
  return t0 > cutoff and '(' .. fmt(t0) or openCutoff
end
-- Named from the meta key (same hash tag, so the same Cluster slot) rather than passed as KEYS:
-- a pick's arguments stay what they were (issue #8). Only touched by picks that use them.
local poolBase = string.sub(meta, 1, -5)
local fairKey, ulogKey, queueKey = poolBase .. 'fair', poolBase .. 'ulog', poolBase .. 'queue'
local user, weight, ticket = ARGV[3] or '', tonumber(ARGV[4]) or 1, ARGV[5] or ''
local queueMax, waitMs = tonumber(ARGV[6]) or 0, tonumber(ARGV[7]) or 0
-- The requests limit in force for account a: the configured rpm, or what its provider stated
-- (a key with no configured rpm is paced, and shared, by the learned one).
local function rpmOf(a)
  if not anyLearned then return rpm end
  local l = learnedOf(a)
  return l and effectiveLimit(rpm, l[1]) or rpm
end
-- Fair share counts requests, so it needs a requests limit: configured, or stated to an account
-- (a pool with only a learned token limit, as most answers state one, has no share to compute).
local fairOn = user ~= '' and (rpm > 0 or state.anyRequestsLimit)
local scarce = fairOn and state.scarceAt > now - 2 * windowMs

local requestCount, tokenSum, usableMemo = {}, {}, {}

-- Estimated requests of every account (unlimited rpm, least-loaded only), read on first need.
local estimates = nil
local function requests(a)
  local c = requestCount[a]
  if c == nil then
    if exactRequests(a) then
      c = redis.call('ZCOUNT', KEYS[3 * a + 1], openCutoff, '+inf')
    else
      if estimates == nil then estimates = estimateLoads(loadKey, now, windowMs, 'r', accountNames) end
      c = estimates[a]
    end
    requestCount[a] = c
  end
  return c
end

-- Only called when tpm > 0 or the account learned limits (its keys are passed then).
local function tokens(a)
  local s = tokenSum[a]
  if s == nil then
    s = trimTokens(KEYS[3 * a + 2], KEYS[3 * a + 3], cutoff)
    tokenSum[a] = s
  end
  return s
end

-- Within the limits in force, and (issue 22) while the provider's remaining holds, fewer
-- picks / tokens since its observation than it said were left.
local function usableLearned(a, l)
  local er = effectiveLimit(rpm, l[1])
  if er > 0 and requests(a) >= er then return false end
  if l[3] ~= nil and l[2] ~= nil and now < l[4] and redis.call('ZCOUNT', KEYS[3 * a + 1], since(l[3]), '+inf') >= l[2] then return false end
  local et = effectiveLimit(tpm, l[5])
  if et > 0 and tokens(a) >= et then return false end
  if l[7] ~= nil and l[6] ~= nil and now < l[8] then
    local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a + 2], since(l[7]), '+inf')
    local sum = 0
    for j = 1, #e do sum = sum + tokenOf(e[j]) end
    if sum >= l[6] then return false end
  end
  return true
end

local function usable(a)
  local u = usableMemo[a]
  if u == nil then
    if cooling[accountNames[a]] then
      u = false
    elseif anyLearned and learnedOf(a) then
      u = usableLearned(a, learnedOf(a))
    else
      u = (rpm == 0 or requests(a) < rpm) and (tpm == 0 or tokens(a) < tpm)
    end
    usableMemo[a] = u
  end
  return u
end

-- Issue 22: with a queue or a scarce pool, a usable key may still be held back: for the waiters
-- ahead (hold 'queue') or for the active users under their share (hold 'share').
local hold, ahead, free, holdCapacity = nil, 0, 0, 0
local myTicket = nil
if state.queued or scarce then
  local capacity, seen = 0, {}
  for i = 1, n do
    local a = accountOfKey[i]
    if not disabled[fingerprints[i]] and not seen[a] then
      seen[a] = true
      if not cooling[accountNames[a]] then
        local ar = rpmOf(a)
        if ar > 0 then
          capacity = capacity + ar
          if usable(a) then free = free + math.max(0, ar - requests(a)) end
        elseif usable(a) then
          free = math.huge
        end
      end
    end
  end
  holdCapacity = capacity
  local use, active = nil, nil
  if fairOn then
    use, active = fairUsers(fairKey, ulogKey, now, windowMs)
    redis.call('HSET', fairKey, 'w:' .. user, weight, 'a:' .. user, fmt(now))
    active[user] = weight
    if use[user] == nil then use[user] = 0 end
  end
  if state.queued then
    local length = queueTrim(queueKey, meta, now)
    local rank = nil
    if length > 0 and ticket ~= '' then
      rank = redis.call('ZRANK', queueKey, ticket)
      if rank then myTicket = ticket end
    end
    if length > 0 and not rank and free <= length and waitMs > 0 and length < queueMax then
      -- A newcomer does not pass the waiters: it joins at its fair place, and only that place counts.
      state.seq = redis.call('HINCRBY', meta, 'seq', 1)
      myTicket = queueJoin(queueKey, meta, now, state.seq, waitMs, user, weight, use and use[user])
      rank = redis.call('ZRANK', queueKey, myTicket)
    end
    ahead = rank or length
    if length > 0 and free <= ahead then hold = 'queue' end
  end
  if not hold and scarce and fairOn and free >= 1 and free ~= math.huge and not fairAllows(use, active, user, capacity, free) then hold = 'share' end
end

-- A request that may wait and is not served joins the queue, unless it is full.
local function joinQueue()
  if myTicket or waitMs <= 0 or queueMax <= 0 then return end
  if redis.call('ZCARD', queueKey) >= queueMax then return end
  local use = nil
  if fairOn then use = fairUsers(fairKey, ulogKey, now, windowMs)[user] end
  state.seq = redis.call('HINCRBY', meta, 'seq', 1)
  myTicket = queueJoin(queueKey, meta, now, state.seq, waitMs, user, weight, use)
end

local start = state.cursor % n
local chosen, chosenAccount = nil, nil
local anyEnabled = false
local best = nil
for step = 0, (hold and -1 or n - 1) do
  local i = (start + step) % n
  if not disabled[fingerprints[i + 1]] then
    anyEnabled = true
    local a = accountOfKey[i + 1]
    if usable(a) then
      if not leastLoaded then
        chosen, chosenAccount = i, a
        break
      end
      -- One rpm for the whole pool, so the lowest usage ratio is the lowest count;
      -- strict < keeps the earliest in round-robin order on ties.
      local load = requests(a)
      if best == nil or load < best then
        best, chosen, chosenAccount = load, i, a
      end
    end
  end
end

if chosen ~= nil then
  local seq = state.seq + 1
  if exactRequests(chosenAccount) then
    local rlog = KEYS[3 * chosenAccount + 1]
    -- Counting reads only the window (ZCOUNT from the cutoff), so stale entries cost memory,
    -- never correctness; trimming on 1 pick in 8 keeps them few. The TTL follows every add.
    if (seq + now) % 8 == 0 then redis.call('ZREMRANGEBYSCORE', rlog, '-inf', fmt(cutoff)) end
    redis.call('ZADD', rlog, now, seq)
    redis.call('PEXPIRE', rlog, logTtlMs)
    redis.call('HSET', meta, 'cursor', chosen + 1, 'seq', seq)
  else
    redis.call('HSET', meta, 'cursor', chosen + 1, 'seq', seq)
    countLoad(loadKey, now, windowMs, 'r', accountNames[chosenAccount], 1, metaTtlMs)
  end
  -- The state TTL is days long: refreshing it on the first pick and every 64th after is plenty.
  -- The definition's TTL follows (a definition that expires anyway costs one retry).
  if seq % 64 == 1 then
    redis.call('PEXPIRE', meta, math.max(metaTtlMs, state.lastUntil - now))
    redis.call('PEXPIRE', defKey, metaTtlMs)
  end
  if fairOn then fairCount(fairKey, ulogKey, now, cutoff, seq, user, weight, metaTtlMs) end
  if myTicket then
    redis.call('ZREM', queueKey, myTicket)
    if redis.call('ZCARD', queueKey) == 0 then redis.call('HDEL', meta, 'q') end
  end
  return {1, fingerprints[chosen + 1]}
end

if hold then
  -- Held back, not busy: retry when enough of the shared window has left it to serve this
  -- place (the k-th next slot to free over the usable accounts), else at the soonest change.
  local k = math.max(1, ahead + 1 - free)
  local times, seen = {}, {}
  for i = 1, n do
    local a = accountOfKey[i]
    if not disabled[fingerprints[i]] and not seen[a] then
      seen[a] = true
      local untilMs = cooling[accountNames[a]]
      if untilMs then
        times[#times + 1] = untilMs - now
      elseif rpmOf(a) > 0 then
        local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a + 1], openCutoff, '+inf', 'WITHSCORES', 'LIMIT', 0, k)
        for j = 2, #e, 2 do times[#times + 1] = tonumber(e[j]) + windowMs - now end
      end
    end
  end
  table.sort(times)
  -- Nothing in the logs to wait for (waiters ahead whose instance is gone, until their
  -- deadline): a slot's share of the window, rather than a spin.
  local wait = times[math.min(k, #times)] or windowMs / math.max(1, holdCapacity)
  wait = math.max(1, math.ceil(wait))
  joinQueue()
  if myTicket then return {3, wait, myTicket} end
  return {0, wait}
end

if not anyEnabled then return {-1} end
if rpm > 0 or tpm > 0 or state.anyRequestsLimit then redis.call('HSET', meta, 'fs', fmt(now)) end
if fairOn then redis.call('HSET', fairKey, 'w:' .. user, weight, 'a:' .. user, fmt(now)) end

-- Busy: the soonest moment any enabled key's account frees up.
local waitMemo = {}
local function waitOf(a)
  local w = waitMemo[a]
  if w ~= nil then return w end
  w = 0
  local untilMs = cooling[accountNames[a]]
  if untilMs then w = untilMs - now end
  local l = anyLearned and learnedOf(a)
  local er = l and effectiveLimit(rpm, l[1]) or rpm
  local et = l and effectiveLimit(tpm, l[5]) or tpm
  if er > 0 and requests(a) >= er then
    -- The (count - er + 1)-th oldest entry is the one whose leaving brings the count under er.
    local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a + 1], openCutoff, '+inf', 'WITHSCORES', 'LIMIT', requests(a) - er, 1)
    if e[2] then w = math.max(w, tonumber(e[2]) + windowMs - now) end
  end
  if et > 0 and tokens(a) >= et then
    local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a + 2], openCutoff, '+inf', 'WITHSCORES')
    local remaining = tokens(a)
    for j = 1, #e, 2 do
      remaining = remaining - tokenOf(e[j])
      if remaining < et then
        w = math.max(w, tonumber(e[j + 1]) + windowMs - now)
        break
      end
    end
  end
  -- A provider's remaining used up holds until its reset (issue 22).
  if l then
    if l[3] ~= nil and l[2] ~= nil and now < l[4] and redis.call('ZCOUNT', KEYS[3 * a + 1], since(l[3]), '+inf') >= l[2] then w = math.max(w, l[4] - now) end
    if l[7] ~= nil and l[6] ~= nil and now < l[8] then
      local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a + 2], since(l[7]), '+inf')
      local sum = 0
      for j = 1, #e do sum = sum + tokenOf(e[j]) end
      if sum >= l[6] then w = math.max(w, l[8] - now) end
    end
  end
  waitMemo[a] = w
  return w
end

local wait = nil
for i = 0, n - 1 do
  if not disabled[fingerprints[i + 1]] then
    local w = waitOf(accountOfKey[i + 1])
    if wait == nil or w < wait then wait = w end
  end
end
wait = math.ceil(wait)
if wait < 1 then wait = 1 end
joinQueue()
if myTicket then return {3, wait, myTicket} end
return {0, wait}
