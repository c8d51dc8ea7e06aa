"""Device simulators that speak the real bytes, built from the same profiles the agent reads."""

from .market import COMMODITIES, Market, Stall
from .pty_link import PtyLineServer, PtyPort, TcpLineServer
from .purchases import Purchase, draw_purchase
from .scale import CHEAT_KINDS, Cheat, ScaleFirmware

__all__ = [
    "CHEAT_KINDS",
    "COMMODITIES",
    "Cheat",
    "Market",
    "PtyLineServer",
    "PtyPort",
    "Purchase",
    "ScaleFirmware",
    "Stall",
    "TcpLineServer",
    "draw_purchase",
]
