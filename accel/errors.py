"""Typed exceptions raised by AXW; the CLI turns them into one-line messages and exit codes."""


class AxwError(Exception):
    """Base class of every error AXW raises on purpose."""


class ConfigError(AxwError):
    """A hardware configuration is malformed or describes impossible hardware."""


class ShapeError(AxwError):
    """Operands do not have compatible shapes."""


class ValueRangeError(AxwError):
    """An operand value is NaN, not an integer, or outside its format."""


class InputFileError(AxwError):
    """An input file is missing, unreadable or malformed."""


class ContractError(AxwError):
    """An arithmetic contract is malformed or does not match the hardware."""


class ProgramError(AxwError):
    """A Program violates a bound of the hardware it was compiled for."""


class WorkloadError(AxwError):
    """A workload builder was given parameters it cannot express."""
