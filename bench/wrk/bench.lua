-- One wrk script for every benchmark cell (run with -t1).
--   wrk ... -s bench/wrk/bench.lua URL -- METHOD BODIES AUTH MODE [NEWFILE]
-- METHOD  GET or POST
-- BODIES  "-" for no body, else a file of form-encoded bodies, one per line
-- AUTH    value of the Authorization header, or "-"
-- MODE    "repeat": send the first body again and again;
--         "cycle":  send the bodies round-robin (reusable tokens, e.g. organization_switch);
--         "once":   send each body once, in order, then stop (single-use codes and tokens);
--         "chain":  like "once", but every 2xx response's refresh_token is queued as the body
--                   "grant_type=refresh_token&refresh_token=..." (rotation: each used once) and
--                   also appended to NEWFILE, so that the caller can keep the unused ones.
-- done() prints one machine-readable line: "BENCH k=v ..." plus "BENCH_FIRST_BAD <status> <body>".
-- "used" in it is the number of bodies handed out (once / chain): the caller drops those.
-- "active_us" is the time from the start to the last response (the run's length when it was
-- count-bounded and stopped early: wrk's duration_us is always the full -d).

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]])
local tv = ffi.new("bench_timeval")
local function now_us()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

local threads = {}
local bodies, n, i = {}, 0, 0
local mode, fixed, newfile = "repeat", nil, nil
ok, bad, first_bad, exhausted, used, answered = 0, 0, "", 0, 0, 0
-- wrk's own duration is always -d (its main thread sleeps that long), also when a
-- count-bounded run stops early; active_us is from init() to the last response instead.
t_start, t_last = 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  t_start = now_us()
  wrk.method = args[1]
  local file, auth = args[2], args[3]
  mode = args[4] or "repeat"
  if auth and auth ~= "-" then
    wrk.headers["Authorization"] = auth
  end
  if file and file ~= "-" then
    for line in io.lines(file) do
      if line ~= "" then
        bodies[#bodies + 1] = line
      end
    end
    n = #bodies
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  if mode == "chain" then
    newfile = io.open(args[5], "w")
  end
  if mode == "repeat" then
    fixed = wrk.format(nil, nil, nil, bodies[1])
  end
end

function request()
  if mode == "repeat" then
    return fixed
  end
  if mode == "cycle" then
    i = i % n + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
  i = i + 1
  if i > n then
    -- Every body has been sent: the run ends (count-bounded) when the last of them has been
    -- answered, in response(). Until then a connection that asks for more sends this filler;
    -- it carries no code or token, so it redeems nothing, and its answer (an OAuth error
    -- naming the grant type) is not counted.
    i = n -- (chain mode: a body queued later is still sent)
    exhausted = 1
    if answered >= used then
      wrk.thread:stop()
    end
    return wrk.format(nil, nil, nil, "grant_type=exhausted")
  end
  used = i
  return wrk.format(nil, nil, nil, bodies[i])
end

function response(status, headers, body)
  if exhausted == 1 and status == 400 and string.find(body or "", "unsupported_grant_type", 1, true) then
    return -- the filler's answer
  end
  t_last = now_us()
  answered = answered + 1
  if exhausted == 1 and answered >= used then
    wrk.thread:stop()
  end
  if status >= 200 and status < 300 then
    ok = ok + 1
    if newfile then
      local token = string.match(body or "", '"refresh_token"%s*:%s*"([^"]+)"')
      if token then
        n = n + 1
        bodies[n] = "grant_type=refresh_token&refresh_token=" .. token
        newfile:write(bodies[n], "\n")
        newfile:flush()
      end
    end
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 400)
    end
  end
end

function done(summary, latency, requests)
  local o, b, ex, u, fb, active = 0, 0, 0, 0, "", 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
    u = u + t:get("used")
    ex = math.max(ex, t:get("exhausted"))
    active = math.max(active, t:get("t_last") - t:get("t_start"))
    if fb == "" then
      fb = t:get("first_bad")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d active_us=%d ok=%d bad=%d exhausted=%d used=%d connect=%d read=%d " ..
      "write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, active, o, b, ex, u, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  io.write("BENCH_FIRST_BAD " .. string.gsub(fb, "[\r\n]+", " ") .. "\n")
end
