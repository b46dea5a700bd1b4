-- State of every key of a pool, in key order (writes nothing but the removal of ended cooldowns).
-- KEYS: meta, load, then per account a (1-based): KEYS[3a] request log, KEYS[3a+1] token log,
--       KEYS[3a+2] token sum. ARGV: now ('' = Redis TIME), windowMs, rpm, tpm, m, account names 1..m,
--       then per key: fingerprint, account index (1-based)
-- Returns {now, then per key: status, reason ('' = none), until ('' = none), requests, tokens,
--         learned limits as stored ('' = none; issue 22)}
local meta = KEYS[1]
local now = clockNow(ARGV[1])
local windowMs = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local m = tonumber(ARGV[5])
local base = 5 + m
local n = (#ARGV - base) / 2
local openCutoff = '(' .. fmt(now - windowMs)
local state = loadMeta(meta, now)
local accountNames = { unpack(ARGV, 6, 5 + m) }
local requestEstimates = rpm == 0 and estimateLoads(KEYS[2], now, windowMs, 'r', accountNames) or nil
local tokenEstimates = tpm == 0 and estimateLoads(KEYS[2], now, windowMs, 't', accountNames) or nil

local requests, tokens = {}, {}
for a = 1, m do
  -- A window the provider stated is an exact log (issue 22), as in pick.lua.
  local raw = state.learned[accountNames[a]]
  local l = raw and parseLearned(raw) or {}
  if rpm > 0 or l[3] ~= nil then
    requests[a] = redis.call('ZCOUNT', KEYS[3 * a], openCutoff, '+inf')
  else
    requests[a] = requestEstimates[a]
  end
  if tpm > 0 or l[7] ~= nil then
    local sum = 0
    local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a + 1], openCutoff, '+inf')
    for j = 1, #e do sum = sum + tokenOf(e[j]) end
    tokens[a] = sum
  else
    tokens[a] = tokenEstimates[a]
  end
end

local out = {fmt(now)}
for i = 0, n - 1 do
  local fp = ARGV[base + 2 * i + 1]
  local a = tonumber(ARGV[base + 2 * i + 2])
  local name = ARGV[5 + a]
  local status, reason, untilMs = 'ok', '', ''
  if state.disabled[fp] then
    status, reason = 'disabled', state.disabled[fp]
  elseif state.cooling[name] then
    status, reason, untilMs = 'cooling', state.reasons[name], fmt(state.cooling[name])
  end
  out[#out + 1] = status
  out[#out + 1] = reason
  out[#out + 1] = untilMs
  out[#out + 1] = requests[a]
  out[#out + 1] = tokens[a]
  out[#out + 1] = state.learned[name] or ''
end
return out
