"""`hubhop demo`: the whole network on one laptop. A slice of the shipped topology runs as real
processes on 127.0.x.y (hospital edges in several Hubei cities, city data centres, key cities,
hub clusters, each fronting a demo backend), a hospital workload runs from the hospitals, and
the demo prints where every request was served, per lane and tier, then stops what it started.

One concept per file:
- `command`    the command: knobs, the phases (start, converge, load, stop), the report
- `readiness`  when a fresh network is ready for load: every entry routes every stream
- `progress`   a progress bar on a terminal, plain lines elsewhere
- `table`      the printed tables and the check that every request is counted once (pure)
- `plots`      the map of sites coloured by load, with the routes taken

The network itself (processes, topology, backend profiles, the slice) is `hubhop.lab`'s; the
load and its figures are `hubhop.loadgen`'s.
"""
