"""Turns simulation results into tables and pages; it never simulates."""
