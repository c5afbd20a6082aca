"""The emulated wide-area network: a topology of sites and the latency between them.

This test and benchmark machine has only loopback and no kernel delay emulation, so hubhop
emulates wide-area latency itself. Each daemon of a local cluster binds its own 127.x address;
the topology (`topology`) maps those addresses to sites with coordinates, and the model
(`model`) says how long a datagram between two sites takes: propagation over a route longer
than the great circle, a cost per router hop, jitter, loss and switchable partitions. The
asyncio adapter that delays real sends lives in `hubhop.io.wan_delay`.

Rules: pure like `hubhop.core` (the same import allowlist, plus `hubhop.core` and itself):
no sockets, asyncio, clocks or threads; randomness is an `rng: random.Random` argument. The
one exception is `load_topology`, which reads the topology file and its places file once, at
start-up, with the builtin `open`. The emulation is opt-in and off by default; nothing in
`hubhop.core` imports this package.
"""
