"""hubhop: a latency-aware routing daemon for computing-power networks.

One daemon runs on every edge node, city data center and national hub. Apps call their local
daemon; it serves each inference request from the nearest node that fits the request's latency
tier, lane, chip and budget.
"""

__version__ = "0.1.0"
