-- State of every key of a pool, in key order (writes nothing but the removal of ended cooldowns).
-- KEYS: as for pick.lua. ARGV: now ('' = Redis TIME), windowMs, m, account names 1..m,
--       then per key: fingerprint, account index (1-based)
-- Returns {now, then per key: status, reason ('' = none), until ('' = none), requests, tokens}
local meta = KEYS[1]
local now = clockNow(ARGV[1])
local m = tonumber(ARGV[3])
local base = 3 + m
local n = (#ARGV - base) / 2
local openCutoff = '(' .. fmt(now - tonumber(ARGV[2]))
local disabled, cooling, reasons = loadMeta(meta, now)

local requests, tokens = {}, {}
for a = 1, m do
  requests[a] = redis.call('ZCOUNT', KEYS[3 * a - 1], openCutoff, '+inf')
  local sum = 0
  local e = redis.call('ZRANGEBYSCORE', KEYS[3 * a], openCutoff, '+inf')
  for j = 1, #e do sum = sum + tokenOf(e[j]) end
  tokens[a] = sum
end

local out = {fmt(now)}
for i = 0, n - 1 do
  local fp = ARGV[base + 2 * i + 1]
  local a = tonumber(ARGV[base + 2 * i + 2])
  local name = ARGV[3 + a]
  local status, reason, untilMs = 'ok', '', ''
  if disabled[fp] then
    status, reason = 'disabled', disabled[fp]
  elseif cooling[name] then
    status, reason, untilMs = 'cooling', reasons[name], fmt(cooling[name])
  end
  out[#out + 1] = status
  out[#out + 1] = reason
  out[#out + 1] = untilMs
  out[#out + 1] = requests[a]
  out[#out + 1] = tokens[a]
end
return out
