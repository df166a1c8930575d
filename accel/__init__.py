"""AXW: compile Y = A·X·W onto a sparse-A / dense-W systolic array, simulate it exactly."""

from importlib import import_module

__all__ = ["HardwareConfig", "load_config", "preset", "Contract", "IntFormat", "make_contract",
           "AxwError", "Problem", "make_problem", "reference"]
__version__ = "0.1.0"

# The names are loaded on first use (PEP 562), so that the ``accel`` command can start
# loading the simulator's compiled kernel before NumPy and SciPy are imported.
_HOME = {"HardwareConfig": "config", "load_config": "config", "preset": "config",
         "Contract": "contract", "IntFormat": "contract", "make_contract": "contract",
         "AxwError": "errors", "Problem": "problem", "make_problem": "problem",
         "reference": "reference"}


def __getattr__(name):
    if name in _HOME:
        value = getattr(import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
