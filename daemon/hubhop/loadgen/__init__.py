"""`hubhop loadgen`: an open-loop load generator for any hubhop network (or any server speaking
the OpenAI or KServe v2 REST APIs).

Open loop: every request has a planned send time drawn before the run (fixed-rate or Poisson
arrivals), it is sent at that time whatever happened to the requests before it, and its latency
is measured from that planned time. A slow or stalled server therefore shows as latency, never
as fewer requests (no coordinated omission); a client that falls behind sends late requests at
once and its own lag shows the same way.

One concept per file:
- `workload`        the workload file (TOML): streams of requests, validated whole (pure)
- `schedule`        planned send times from a seed and a clock origin (pure)
- `request_shapes`  the HTTP request each protocol sends: URL, hint headers, body (pure)
- `outcome`         one request's result and how its errors and its tier are judged (pure)
- `stats`           per (lane, tier) HDR histograms and counters (pure)
- `report`          the printed tables and the JSON document (pure)
- `runner`          the asyncio sender: one aiohttp session, sends on the plan, drains
- `output`          files: the JSON result with the machine it ran on, the CDF plot
- `command`         `hubhop loadgen`'s command body

The pure modules take time and randomness as arguments, as the core does; tests/test_layering.py
holds them to it.
"""
