"""Amaranth description of the sparse-row array (the only amaranth user).

The RTL issue fills this package; the machine it must implement is specified in
docs/machine.md and executed by ``sim``.
"""
