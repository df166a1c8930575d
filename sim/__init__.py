"""Cycle-level simulator of the sparse-row systolic array (the only numba user)."""

from .engine import SimResult, simulate, STALL_CAUSES

__all__ = ["SimResult", "simulate", "STALL_CAUSES"]
