-- One wrk script for every benchmark cell (run with -t1).
--   wrk ... -s bench/wrk/bench.lua URL -- METHOD BODIES AUTH MODE
-- METHOD  GET or POST
-- BODIES  "-" for no body, else a file of form-encoded bodies, one per line
-- AUTH    value of the Authorization header, or "-"
-- MODE    "repeat": send the first body again and again;
--         "once":   send each body once, in order, then stop (single-use authorization codes)
-- done() prints one machine-readable line: "BENCH k=v ..." plus "BENCH_FIRST_BAD <status> <body>".

local threads = {}
local bodies, n, i = {}, 0, 0
local once, fixed = false, nil
ok, bad, first_bad, exhausted = 0, 0, "", 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = args[1]
  local file, auth = args[2], args[3]
  once = args[4] == "once"
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
  if not once then
    fixed = wrk.format(nil, nil, nil, bodies[1])
  end
end

function request()
  if not once then
    return fixed
  end
  i = i + 1
  if i > n then
    -- Every code has been sent: end this run (count-bounded). The request returned here
    -- may still go out; it carries no code, so it cannot redeem anything.
    exhausted = 1
    wrk.thread:stop()
    return wrk.format(nil, nil, nil, "grant_type=authorization_code&code=exhausted")
  end
  return wrk.format(nil, nil, nil, bodies[i])
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 400)
    end
  end
end

function done(summary, latency, requests)
  local o, b, ex, fb = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
    ex = math.max(ex, t:get("exhausted"))
    if fb == "" then
      fb = t:get("first_bad")
    end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d ok=%d bad=%d exhausted=%d connect=%d read=%d write=%d " ..
      "status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, o, b, ex, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  io.write("BENCH_FIRST_BAD " .. string.gsub(fb, "[\r\n]+", " ") .. "\n")
end
