"""Bytes each gossip system sends, counted on the loopback interface itself.

Why here and not in the processes: Serf exposes no byte counters, and per-process socket byte
counts do not exist on Linux for UDP. Every packet on `lo` is seen by a packet socket, so one
counter measures both systems the same way, from outside, including headers if wanted.

Rules:
- A packet belongs to a system when it is UDP or TCP to or from port 7946 on an address of that
  system's /24 (the gossip bind addresses). TCP push-pull clients connect from 127.0.0.1, so the
  TCP bytes are counted per system, not per node; per-node figures are the system total / N.
- Loopback hands every packet to packet sockets twice (outgoing, then incoming); only the
  incoming copy is counted.
- Needs CAP_NET_RAW (root). Without it the figure is "n/a" with the reason, never a guess.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
GOSSIP_PORT = 7946
UDP_HEADER = 8


@dataclass
class Totals:
    payload_bytes: int = 0  # UDP and TCP payload: what the gossip library wrote
    ip_bytes: int = 0  # whole IP packets, headers included (TCP acks and handshakes too)
    udp_payload_bytes: int = 0
    tcp_payload_bytes: int = 0
    packets: int = 0
    udp_by_source: Counter[str] = field(default_factory=Counter)  # UDP payload per node address


class LoopbackCounter:
    """Count gossip bytes per system prefix ("127.0.5", ...) while the `with` block runs."""

    def __init__(self, prefixes: list[str]) -> None:
        self.prefixes = prefixes
        self.totals = {p: Totals() for p in prefixes}
        self.error: str | None = None
        self.seconds = 0.0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> LoopbackCounter:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            sock.bind(("lo", 0))
            sock.settimeout(0.2)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        except (OSError, AttributeError) as exc:
            self.error = f"cannot open a packet socket on lo ({exc}); needs root / CAP_NET_RAW"
            return self
        self._sock = sock
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._started
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def _system(self, ip: bytes, port: int) -> str | None:
        if port != GOSSIP_PORT:
            return None
        prefix = socket.inet_ntoa(ip).rsplit(".", 1)[0]
        return prefix if prefix in self.totals else None

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                packet, address = self._sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == PACKET_OUTGOING or len(packet) < 20:
                continue
            with contextlib.suppress(struct.error, IndexError):
                self._count(packet)

    def _count(self, packet: bytes) -> None:
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        proto = packet[9]
        src, dst = packet[12:16], packet[16:20]
        if proto not in (6, 17):
            return
        sport, dport = struct.unpack_from("!HH", packet, ihl)
        system = self._system(src, sport) or self._system(dst, dport)
        if system is None:
            return
        t = self.totals[system]
        t.packets += 1
        t.ip_bytes += total
        if proto == 17:
            payload = total - ihl - UDP_HEADER
            t.udp_payload_bytes += payload
            t.udp_by_source[socket.inet_ntoa(src)] += payload
        else:
            payload = total - ihl - (packet[ihl + 12] >> 4) * 4
            t.tcp_payload_bytes += payload
        t.payload_bytes += payload

    def per_node(self, prefix: str, nodes: int) -> dict[str, float | int | None]:
        """Bytes/s sent per node: the system's mean, and the busiest node's UDP alone."""
        t = self.totals[prefix]
        seconds = max(self.seconds, 1e-9)
        by_node = t.udp_by_source.values()
        return {
            "seconds": round(self.seconds, 1),
            "payload_Bps_per_node": round(t.payload_bytes / seconds / nodes, 1),
            "ip_Bps_per_node": round(t.ip_bytes / seconds / nodes, 1),
            "udp_payload_Bps_per_node": round(t.udp_payload_bytes / seconds / nodes, 1),
            "tcp_payload_Bps_per_node": round(t.tcp_payload_bytes / seconds / nodes, 1),
            "udp_payload_Bps_max_node": round(max(by_node) / seconds, 1) if by_node else None,
            "packets_per_s_per_node": round(t.packets / seconds / nodes, 2),
        }
