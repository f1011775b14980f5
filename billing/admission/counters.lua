-- Admission counters inside Redis: one script, four operations chosen by ARGV[1] (admit, status, refund, raise).
-- It mirrors billing/admission/window.py; the shared contract tests hold both engines to the same answers.
--
-- A counter is a hash. Bucket fields: "<label>" -> units, where a label is the latest booking time (ms) the bucket
-- can hold; a bucket is counted while label + window > now, so a unit frees at most one bucket width late, never
-- early. Summary fields: n (units in all buckets), lo / hi (the smallest / largest label present). Every write below
-- keeps them true, so the usual admit reads three fields instead of every bucket.
--
-- Time and labels come from the caller as decimal strings (docs/admission.md, "Time"); Lua never formats a
-- timestamp, it only compares them (doubles are exact for integers below 2^53).

local mode = ARGV[1]
-- 'admit+journal': admit, and if admitted append one stream entry in the same step. The stream is the last key;
-- the last three arguments are its approximate max length, the field and the value.
local journal = mode == 'admit+journal'
local nkeys = journal and #KEYS - 1 or #KEYS

local function delete_fields(key, fields)
  -- unpack() is bounded by the Lua stack; a counter holds ~120 buckets, but a shrunk window may leave more.
  for first = 1, #fields, 500 do
    redis.call('HDEL', key, unpack(fields, first, math.min(first + 499, #fields)))
  end
end

-- Every bucket of a counter: the live ones (label + window > now) oldest first, and the names of the others.
local function read_buckets(key, window, now)
  local raw = redis.call('HGETALL', key)
  local live, dead = {}, {}
  for j = 1, #raw, 2 do
    local label = tonumber(raw[j])
    if label then
      local units = tonumber(raw[j + 1])
      if units > 0 and label + window > now then
        live[#live + 1] = { label, units, raw[j] }
      else
        dead[#dead + 1] = raw[j]
      end
    end
  end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  return live, dead
end

local function summarize(live)
  local total = 0
  for _, bucket in ipairs(live) do total = total + bucket[2] end
  if total == 0 then return { total = 0 } end
  local first, last = live[1], live[#live]
  return { total = total, lo = first[1], lo_s = first[3], hi = last[1], hi_s = last[3] }
end

local function store_summary(key, c)
  if c.total == 0 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'n', c.total, 'lo', c.lo_s, 'hi', c.hi_s)
  end
end

-- A counter as counted at `now`. If its oldest bucket is still live, so is every bucket and the summary is the
-- answer; otherwise recount, and (when `write`) drop what left the window. Each bucket is dropped once, so the
-- recount is paid about once per bucket width per busy counter. `label_s` (optional) names the bucket admit would
-- book into: its units come back as `booked` in the same read (that bucket is live, so a recount cannot drop it).
local function load(key, window, now, write, label_s)
  local meta = redis.call('HMGET', key, 'n', 'lo', 'hi', label_s or 'n')
  local booked = label_s and tonumber(meta[4]) or 0
  local total, lo, hi = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
  if total and total > 0 and lo and hi and lo + window > now then
    return { total = total, lo = lo, lo_s = meta[2], hi = hi, hi_s = meta[3], booked = booked }
  end
  -- No usable summary (an empty counter, or one whose oldest bucket left the window): count the buckets.
  local live, dead = read_buckets(key, window, now)
  local c = summarize(live)
  if write and (#live > 0 or #dead > 0 or total) then
    if c.total > 0 then delete_fields(key, dead) end
    store_summary(key, c)
  end
  c.booked = booked
  return c
end

-- How long until `cost` more units fit, if nothing else is booked meanwhile. A cost above the limit never fits:
-- the answer is then one window (docs/admission.md, "Weights").
local function wait_for(key, c, limit, window, now, cost)
  if c.total + cost <= limit then return 0 end
  if cost > limit then return window end
  -- Usually the oldest bucket alone frees enough (always for cost 1 at the limit): one field read.
  if tonumber(redis.call('HGET', key, c.lo_s)) >= c.total + cost - limit then return c.lo + window - now end
  local left = c.total
  for _, bucket in ipairs((read_buckets(key, window, now))) do
    left = left - bucket[2]
    if left + cost <= limit then return bucket[1] + window - now end
  end
  return window
end

local function push_state(reply, c)
  reply[#reply + 1] = tostring(c.total)
  reply[#reply + 1] = c.lo_s or '-1'
  reply[#reply + 1] = c.hi_s or '-1'
end

-- ARGV: admit, now, cost, expiry slack, then per key: limit, window, label of the bucket `now` books into.
-- Returns admitted (0/1), index of the first refusing key (0 = none), retry_after_ms, then per key: used, oldest
-- label, newest label (-1 when nothing is counted), as one comma-separated string: one reply element instead of a
-- dozen is what the client's parser would otherwise spend most of its time on.
if mode == 'admit' or journal then
  local now, cost, slack = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local counters, refused = {}, 0
  for i = 1, nkeys do
    local base = 5 + 3 * (i - 1)
    local limit, window = tonumber(ARGV[base]), tonumber(ARGV[base + 1])
    local c = load(KEYS[i], window, now, true, ARGV[base + 2])
    c.limit, c.window, c.label_s = limit, window, ARGV[base + 2]
    counters[i] = c
    if refused == 0 and c.total + cost > limit then refused = i end
  end
  local retry = 0
  if refused == 0 then
    for i, c in ipairs(counters) do
      local key, label_s, label = KEYS[i], c.label_s, tonumber(c.label_s)
      c.total = c.total + cost
      local bounds = false
      if not c.lo or label < c.lo then c.lo, c.lo_s, bounds = label, label_s, true end
      if not c.hi or label > c.hi then c.hi, c.hi_s, bounds = label, label_s, true end
      if bounds then
        redis.call('HSET', key, 'n', c.total, 'lo', c.lo_s, 'hi', c.hi_s, label_s, c.booked + cost)
        redis.call('PEXPIRE', key, c.hi + c.window - now + slack)
      else
        redis.call('HSET', key, 'n', c.total, label_s, c.booked + cost)
      end
    end
    if journal then
      redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', ARGV[#ARGV - 2], '*', ARGV[#ARGV - 1], ARGV[#ARGV])
    end
  else
    -- The cost must fit in every counter at once, so the wait is the longest of theirs.
    for i, c in ipairs(counters) do
      retry = math.max(retry, wait_for(KEYS[i], c, c.limit, c.window, now, cost))
    end
  end
  local reply = { refused == 0 and '1' or '0', tostring(refused), tostring(retry) }
  for _, c in ipairs(counters) do push_state(reply, c) end
  return table.concat(reply, ',')

-- ARGV: status, now, then per key: window. Reads only. Returns per key: used, oldest label, newest label, as above.
elseif mode == 'status' then
  local now = tonumber(ARGV[2])
  local reply = {}
  for i = 1, #KEYS do push_state(reply, load(KEYS[i], tonumber(ARGV[2 + i]), now, false)) end
  return table.concat(reply, ',')

-- ARGV: refund, cost, then per key: label of the bucket the refunded units were booked into. A bucket never goes
-- below zero; a bucket that is gone (expired, already refunded) gives nothing back.
elseif mode == 'refund' then
  local cost = tonumber(ARGV[2])
  for i = 1, #KEYS do
    local key, label_s = KEYS[i], ARGV[2 + i]
    local have = tonumber(redis.call('HGET', key, label_s))
    if have then
      if have > cost then
        redis.call('HINCRBY', key, label_s, -cost)
        redis.call('HINCRBY', key, 'n', -cost)
      else
        local meta = redis.call('HMGET', key, 'lo', 'hi')
        redis.call('HDEL', key, label_s)
        if label_s == meta[1] or label_s == meta[2] then
          -- The oldest or newest bucket went away: recount which remain (all of them, whatever their age).
          store_summary(key, summarize((read_buckets(key, math.huge, 0))))
        else
          redis.call('HINCRBY', key, 'n', -have)
        end
      end
    end
  end
  return 0

-- ARGV: raise, now, window, expiry slack, then pairs of bucket label and units the ledger proves were booked there.
-- Each bucket becomes the larger of the two: reconciliation adds what the counter lost (Redis restarted without its
-- data) and never takes away what was admitted since the ledger was read (metering/counters.py).
elseif mode == 'raise' then
  local key, now, window, slack = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  for j = 5, #ARGV, 2 do
    local have = tonumber(redis.call('HGET', key, ARGV[j])) or 0
    if tonumber(ARGV[j + 1]) > have then redis.call('HSET', key, ARGV[j], ARGV[j + 1]) end
  end
  local live, dead = read_buckets(key, window, now)
  local c = summarize(live)
  if c.total > 0 then delete_fields(key, dead) end
  store_summary(key, c)
  if c.total > 0 then redis.call('PEXPIRE', key, c.hi + window - now + slack) end
  return 0
end
return redis.error_reply('unknown admission operation')
