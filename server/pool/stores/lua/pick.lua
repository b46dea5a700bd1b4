-- Pick a key by the pool's strategy and count the request, in one atomic round trip.
-- KEYS[1] = meta; account a (1-based): KEYS[3a-1] request log, KEYS[3a] token log, KEYS[3a+1] token sum
-- ARGV: now ('' = Redis TIME), windowMs, rpm, tpm, strategy ('r' | 'l'), metaTtlMs, logTtlMs,
--       m, account names 1..m, then per key: fingerprint, account index (1-based)
-- Returns {1, fingerprint} | {0, retryAfterMs} | {-1} (no key can ever serve)
--
-- Every redis.call costs more than its command, so the hot path makes few: TIME, HGETALL,
-- one ZCOUNT per account looked at (limited rpm only), then the writes for the chosen key.

local meta = KEYS[1]
local now = clockNow(ARGV[1])
local windowMs = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local leastLoaded = ARGV[5] == 'l'
local m = tonumber(ARGV[8])
local base = 8 + m
local n = (#ARGV - base) / 2
if n < 1 then return {-1} end
local cutoff = now - windowMs
-- Number-to-string costs show in a hot script: only limited windows need the cutoff as text.
local openCutoff = (rpm > 0 or tpm > 0) and '(' .. fmt(cutoff) or nil

local state = loadMeta(meta, now)
local disabled, cooling = state.disabled, state.cooling

local requestCount, tokenSum, usableMemo, approx = {}, {}, {}, {}

local function approxOf(a)
  local st = approx[a]
  if st == nil then
    st = approxLoad(state.approx[ARGV[8 + a]], now, windowMs)
    approx[a] = st
  end
  return st
end

local function requests(a)
  local c = requestCount[a]
  if c == nil then
    if rpm > 0 then
      c = redis.call('ZCOUNT', KEYS[3 * a - 1], openCutoff, '+inf')
    else
      c = approxRequests(approxOf(a))
    end
    requestCount[a] = c
  end
  return c
end

-- Only called when tpm > 0.
local function tokens(a)
  local s = tokenSum[a]
  if s == nil then
    s = trimTokens(KEYS[3 * a], KEYS[3 * a + 1], cutoff)
    tokenSum[a] = s
  end
  return s
end

local function usable(a)
  local u = usableMemo[a]
  if u == nil then
    u = not cooling[ARGV[8 + a]]
      and (rpm == 0 or requests(a) < rpm)
      and (tpm == 0 or tokens(a) < tpm)
    usableMemo[a] = u
  end
  return u
end

local start = state.cursor % n
local chosen, chosenAccount = nil, nil
local anyEnabled = false
local best = nil
for step = 0, n - 1 do
  local i = (start + step) % n
  if not disabled[ARGV[base + 2 * i + 1]] then
    anyEnabled = true
    local a = tonumber(ARGV[base + 2 * i + 2])
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
  if rpm > 0 then
    local rlog = KEYS[3 * chosenAccount - 1]
    -- Counting reads only the window (ZCOUNT from the cutoff), so stale entries cost memory,
    -- never correctness; trimming on 1 pick in 8 keeps them few. The TTL follows every add.
    if (seq + now) % 8 == 0 then redis.call('ZREMRANGEBYSCORE', rlog, '-inf', fmt(cutoff)) end
    redis.call('ZADD', rlog, now, seq)
    redis.call('PEXPIRE', rlog, ARGV[7])
    redis.call('HSET', meta, 'cursor', chosen + 1, 'seq', seq)
  else
    local st = approxOf(chosenAccount)
    st.c = st.c + 1
    redis.call('HSET', meta, 'cursor', chosen + 1, 'seq', seq, 'a:' .. ARGV[8 + chosenAccount], approxEncode(st))
  end
  -- The state TTL is days long: refreshing it on the first pick and every 64th after is plenty.
  if seq % 64 == 1 then redis.call('PEXPIRE', meta, math.max(tonumber(ARGV[6]), state.lastUntil - now)) end
  return {1, ARGV[base + 2 * chosen + 1]}
end

if not anyEnabled then return {-1} end

-- Busy: the soonest moment any enabled key's account frees up.
local waitMemo = {}
local function waitOf(a)
  local w = waitMemo[a]
  if w ~= nil then return w end
  w = 0
  local untilMs = cooling[ARGV[8 + a]]
  if untilMs then w = untilMs - now end
  if rpm > 0 and requests(a) >= rpm then
    -- The (count - rpm + 1)-th oldest entry is the one whose leaving brings the count under rpm.
    local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a - 1], openCutoff, '+inf', 'WITHSCORES', 'LIMIT', requests(a) - rpm, 1)
    if e[2] then w = math.max(w, tonumber(e[2]) + windowMs - now) end
  end
  if tpm > 0 and tokens(a) >= tpm then
    local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a], openCutoff, '+inf', 'WITHSCORES')
    local remaining = tokens(a)
    for j = 1, #e, 2 do
      remaining = remaining - tokenOf(e[j])
      if remaining < tpm then
        w = math.max(w, tonumber(e[j + 1]) + windowMs - now)
        break
      end
    end
  end
  waitMemo[a] = w
  return w
end

local wait = nil
for i = 0, n - 1 do
  if not disabled[ARGV[base + 2 * i + 1]] then
    local w = waitOf(tonumber(ARGV[base + 2 * i + 2]))
    if wait == nil or w < wait then wait = w end
  end
end
wait = math.ceil(wait)
if wait < 1 then wait = 1 end
return {0, wait}
