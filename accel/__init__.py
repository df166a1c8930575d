"""AXW: compile Y = A·X·W onto a sparse-A / dense-W systolic array, simulate it exactly."""

from .config import HardwareConfig, load_config, preset
from .contract import Contract, IntFormat, make_contract
from .errors import AxwError
from .problem import Problem, make_problem
from .reference import reference

__all__ = ["HardwareConfig", "load_config", "preset", "Contract", "IntFormat", "make_contract",
           "AxwError", "Problem", "make_problem", "reference"]
__version__ = "0.1.0"
