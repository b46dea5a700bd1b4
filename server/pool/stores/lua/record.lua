-- Record the outcome of a request against a key and its account; also the admin switch.
-- KEYS: meta, request log, token log, token sum (of the key's account), load
-- ARGV: now ('' = Redis TIME), kind ('success' | 'cool' | 'rejected' | 'enable' | 'disable' | 'add'),
--       fingerprint, account, amount (tokens, cooldown ms, or for 'add' the pool's rpm),
--       reason (for 'cool'), windowMs, metaTtlMs, logTtlMs, tpm;
--       for 'add' only, ARGV[11..]: triples ageMs, requests, tokens (see the 'add' branch);
--       for 'success' and 'cool', optionally ARGV[11..17]: what the answer stated of the
--       account's windows (issue 22): sinceMs, requests limit, remaining, resetInMs, tokens
--       limit, remaining, resetInMs ('' = not said), piggybacked on the record call
local meta, tlog, tsum, loadKey = KEYS[1], KEYS[3], KEYS[4], KEYS[5]
local now = clockNow(ARGV[1])
local kind = ARGV[2]
local account = ARGV[4]
local amount = tonumber(ARGV[5])
local windowMs = tonumber(ARGV[7])
local metaTtl = tonumber(ARGV[8])

-- Learned limits: merged into the account's field in meta before the outcome is applied.
local learned = nil
if (kind == 'success' or kind == 'cool') and ARGV[11] ~= nil then
  local raw = redis.call('HGET', meta, 'l:' .. account)
  learned = raw and parseLearned(raw) or {}
  local obs = {}
  for i = 1, 7 do obs[i] = tonumber(ARGV[10 + i]) end
  mergeLearned(learned, obs, now, windowMs)
  redis.call('HSET', meta, 'l:' .. account, encodeLearned(learned))
end

if kind == 'success' then
  if amount <= 0 then
    if learned then extendTtl(meta, metaTtl) end
    return 0
  end
  local exactTokens = tonumber(ARGV[10]) > 0
  if not exactTokens then
    -- A token window the provider stated keeps an exact log, whatever the configured tpm.
    if learned == nil then
      local raw = redis.call('HGET', meta, 'l:' .. account)
      learned = raw and parseLearned(raw) or {}
    end
    exactTokens = learned[7] ~= nil
  end
  if not exactTokens then
    countLoad(loadKey, now, windowMs, 't', account, amount, metaTtl)
  else
    trimTokens(tlog, tsum, now - windowMs)
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    redis.call('ZADD', tlog, now, seq .. ':' .. fmt(amount))
    redis.call('INCRBY', tsum, amount)
    redis.call('PEXPIRE', tlog, ARGV[9])
    redis.call('PEXPIRE', tsum, ARGV[9])
  end
elseif kind == 'cool' then
  local field = 'c:' .. account
  local untilMs = now + amount
  local existing = redis.call('HGET', meta, field)
  -- A short 429 must not cut a long quota cooldown short.
  local longer = true
  if existing then
    local bar = string.find(existing, '|', 1, true)
    if tonumber(string.sub(existing, 1, bar - 1)) >= untilMs then longer = false end
  end
  if not longer and learned == nil then return 0 end
  if longer then
    redis.call('HSET', meta, field, fmt(untilMs) .. '|' .. ARGV[6])
    if amount > metaTtl then metaTtl = amount end
  end
elseif kind == 'rejected' then
  -- An admin's reason stays if the key was switched off while a request was in flight.
  redis.call('HSETNX', meta, 'd:' .. ARGV[3], 'rejected')
elseif kind == 'disable' then
  redis.call('HSET', meta, 'd:' .. ARGV[3], 'admin_disabled')
elseif kind == 'enable' then
  redis.call('HDEL', meta, 'd:' .. ARGV[3])
elseif kind == 'add' then
  -- Requests and tokens the account served while this Redis did not count them (the outage
  -- fallback's admissions, issue 24.9), each at now - ageMs: limited windows get exact log
  -- entries, unlimited ones the estimate (at now). Entries already out of the window are skipped.
  local rpm, tpm = tonumber(ARGV[5]), tonumber(ARGV[10])
  -- Windows the provider stated count exactly too (issue 22).
  local raw = redis.call('HGET', meta, 'l:' .. account)
  if raw then
    local l = parseLearned(raw)
    if rpm == 0 and l[3] ~= nil then rpm = 1 end
    if tpm == 0 and l[7] ~= nil then tpm = 1 end
  end
  local rlog = KEYS[2]
  local cutoff = now - windowMs
  local seq = tonumber(redis.call('HGET', meta, 'seq') or '0') or 0
  local logged = false
  if tpm > 0 then trimTokens(tlog, tsum, cutoff) end
  for i = 11, #ARGV - 2, 3 do
    local at = now - tonumber(ARGV[i])
    local requests, tokens = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    if at > cutoff then
      if requests > 0 then
        if rpm > 0 then
          for _ = 1, requests do
            seq = seq + 1
            redis.call('ZADD', rlog, at, seq)
          end
          logged = true
        else
          countLoad(loadKey, now, windowMs, 'r', account, requests, metaTtl)
        end
      end
      if tokens > 0 then
        if tpm > 0 then
          seq = seq + 1
          redis.call('ZADD', tlog, at, seq .. ':' .. fmt(tokens))
          redis.call('INCRBY', tsum, tokens)
          logged = true
        else
          countLoad(loadKey, now, windowMs, 't', account, tokens, metaTtl)
        end
      end
    end
  end
  redis.call('HSET', meta, 'seq', seq)
  if logged then
    redis.call('PEXPIRE', rlog, ARGV[9])
    redis.call('PEXPIRE', tlog, ARGV[9])
    redis.call('PEXPIRE', tsum, ARGV[9])
  end
else
  return 0
end
extendTtl(meta, metaTtl)
return 1
