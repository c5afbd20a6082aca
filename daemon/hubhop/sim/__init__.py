"""An in-process simulator of many GossipNodes on a virtual clock (not part of the daemon)."""

from hubhop.sim.network import Dissemination, Link, SimNode, Simulator, sim_address
from hubhop.sim.records import DictRecordStore

__all__ = ["DictRecordStore", "Dissemination", "Link", "SimNode", "Simulator", "sim_address"]
