"""Cycle-level simulator of the sparse-row systolic array (the only numba user)."""

from .engine import STALL_CAUSES, SimResult, simulate, warm_up

__all__ = ["SimResult", "simulate", "warm_up", "STALL_CAUSES"]
