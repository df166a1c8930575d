"""The ``accel`` command line: one function per subcommand, errors as one line and an exit code.

Exit codes: 0 success; 2 bad input (flags, files, values, hardware; nothing is written);
3 the run completed and its results were written, but a simulated output is not
bit-exact.  Exceptions other than :class:`~accel.errors.AxwError` are bugs and
propagate with their traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import textwrap
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .config import HardwareConfig, load_config
from .contract import CONTRACT_NAMES, Contract, make_contract
from .errors import AxwError, ShapeError
from .loaders import density_matched_features, load_matrix
from .problem import as_int_dense, make_problem
from .reference import ORDERS
from .runner import run_problems
from .workloads import WORKLOADS, conv2d, conv_transpose2d, cora_like, gcn_model, get_workload
from .cli_dse import DESCRIPTION as _DSE_DESCRIPTION, add_dse_arguments, cmd_dse
from .cli_report import DESCRIPTION as _REPORT_DESCRIPTION, add_report_arguments, cmd_report
from .cli_hdl import HDL_DESCRIPTION, add_hdl_arguments, cmd_hdl

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_ERROR", "EXIT_NOT_EXACT", "RUNS_DIR",
           "GRAPH_WORKLOADS"]

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_NOT_EXACT = 3
#: Parent of the default output folders, relative to the working directory.
RUNS_DIR = Path("runs")
#: ``--workload`` names accepted with ``--graph``: how many GCN layers to run.
GRAPH_WORKLOADS = {"gcn": 1, "gcn-2layer": 2}
#: Features of the X built for ``--graph``: Cora's width and density (binary).
GRAPH_FEATURES = 1433
GRAPH_FEATURE_DENSITY = 0.0127


class _UsageError(Exception):
    """A flag combination argparse cannot check by itself; reported as a usage error."""


# ----------------------------------------------------------------------------- helpers

def _int_or_pair(text: str) -> int | tuple[int, int]:
    """``S`` or ``SY,SX`` (for --stride, --padding, --dilation)."""
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NY,NX, got {text!r}") from None
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return vals
    raise argparse.ArgumentTypeError(f"expected N or NY,NX, got {text!r}")


def _density(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _stem(path: str | Path) -> str:
    name = Path(path).name
    name = name[:-3] if name.lower().endswith(".gz") else name
    return Path(name).stem


def _slug(text: str) -> str:
    """A folder name: characters outside ``[A-Za-z0-9._-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "run"


@contextmanager
def _about(path: str | Path):
    """Prefix AxwErrors raised inside with ``path`` (unless they already name it)."""
    try:
        yield
    except AxwError as e:
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from e


# ----------------------------------------------------------------------------- run

_RUN_DESCRIPTION = """\
Compile one problem Y = A·X·W for the accelerator, simulate it cycle by cycle, check the
simulated Y against the NumPy reference bit for bit, and write the results.

Problem (at most one of):
  (none)                 2-layer GCN on a synthetic Cora (cora_like(): 2708 nodes, 1433
                         binary features, hidden 16, 7 classes); layer 2 takes layer 1's
                         simulated output. Output folder runs/default.
  --a A --x X --w W      any integer-valued matrices (.npy, .npz numpy or scipy.sparse,
                         .mtx, .mtx.gz; any dtype, values must be integers in the
                         operand format). Folder runs/<A>-<X>-<W>.
  --conv2d --image IMG --kernel K
                         conv2d (torch semantics) of an (H, W, C) image with a
                         (KH, KW, C/groups, F) kernel, or with --transposed a
                         conv_transpose2d with a (KH, KW, C, F/groups) kernel. Y's rows
                         are output pixels in row-major order, its columns the output
                         channels. Folder runs/conv2d-<IMG>-<K>.
  --workload NAME        a named built-in workload (listed at the end). Folder runs/<NAME>.
  --workload gcn|gcn-2layer --graph ADJ
                         GCN on your graph: ADJ a symmetric 0/1 adjacency without
                         self-loops (Â = D^-1/2 (G+I) D^-1/2 is built and quantized);
                         X random binary, --features columns (default 1433) at
                         --feature-density (default 0.0127, Cora's), seeded by --seed;
                         seeded Glorot weights, hidden 16, 7 classes. 'gcn' runs layer 1,
                         'gcn-2layer' both layers. Folder runs/<NAME>-<ADJ>.

Hardware: HardwareConfig() defaults, or --config TOML (strict about unknown keys), then
--rows/--cols/--dram-bytes-per-cycle on top. The contract uses the hardware's
operand_bits and acc_bits.

Written to the output folder: output.npy, stats.json, config.json, summary.md, the
Program (program/ or layer<k>/) and, for several layers, layer<k>_output.npy.
Exit status: 0 bit-exact; 2 bad input (one line on stderr, nothing written);
3 written, but a simulated output is not bit-exact.
"""


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "built-in workloads:\n" + textwrap.fill(
        ", ".join(sorted(WORKLOADS)), 88, initial_indent="  ", subsequent_indent="  ",
        break_on_hyphens=False)

    g = p.add_argument_group("generic problem")
    g.add_argument("--a", metavar="FILE", help="A (o × n), sparse or dense")
    g.add_argument("--x", metavar="FILE", help="X (n × c)")
    g.add_argument("--w", metavar="FILE", help="W (c × h)")
    g.add_argument("--contract", choices=CONTRACT_NAMES, default="exact",
                   help="arithmetic contract (default exact: wrapping sums, no requantization)")
    g.add_argument("--mid-shift", type=int, default=0, metavar="N",
                   help="int8 contract: right shift of the intermediate before saturation")
    g.add_argument("--out-shift", type=int, default=0, metavar="N",
                   help="int8 contract: right shift of Y before saturation")
    g = p.add_argument_group("convolution")
    g.add_argument("--conv2d", action="store_true", help="run a convolution")
    g.add_argument("--image", metavar="IMG.npy", help="(H, W, C) image")
    g.add_argument("--kernel", metavar="K.npy", help="(KH, KW, C/groups, F) kernel")
    g.add_argument("--stride", type=_int_or_pair, default=1, metavar="S|SY,SX")
    g.add_argument("--padding", type=_int_or_pair, default=0, metavar="P|PY,PX")
    g.add_argument("--dilation", type=_int_or_pair, default=1, metavar="D|DY,DX")
    g.add_argument("--groups", type=_positive, default=1, metavar="G")
    g.add_argument("--transposed", action="store_true", help="conv_transpose2d instead")
    g = p.add_argument_group("workload")
    g.add_argument("--workload", metavar="NAME",
                   help=f"a built-in workload (listed below) or, with --graph, "
                        f"{' or '.join(GRAPH_WORKLOADS)}")
    g.add_argument("--graph", metavar="ADJ", help="adjacency file for a GCN workload")
    g.add_argument("--features", type=_positive, default=GRAPH_FEATURES, metavar="F",
                   help=f"--graph: feature columns (default {GRAPH_FEATURES})")
    g.add_argument("--feature-density", type=_density, default=GRAPH_FEATURE_DENSITY,
                   metavar="D", help=f"--graph: feature density (default {GRAPH_FEATURE_DENSITY})")
    g.add_argument("--seed", type=int, default=0, help="seed of generated data (default 0)")
    g = p.add_argument_group("hardware")
    g.add_argument("--config", metavar="TOML", help="hardware config file")
    g.add_argument("--rows", type=int, metavar="R", help="PE rows")
    g.add_argument("--cols", type=int, metavar="C", help="PE columns")
    g.add_argument("--dram-bytes-per-cycle", type=int, metavar="B", help="off-chip bandwidth")
    g = p.add_argument_group("compilation and simulation")
    g.add_argument("--order", choices=("auto",) + ORDERS, default="auto",
                   help="association order (default auto: the compiler's cost model)")
    g.add_argument("--stall-permille", type=int, default=0, metavar="N",
                   help="memory interface refuses transfers in N of 1000 cycles (default 0)")
    g.add_argument("--stall-seed", type=int, default=1, metavar="S",
                   help="seed of the stall sequence (default 1)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<name>)")


def _add_run_command_arguments(p) -> None:
    _add_run_arguments(p)
    p.add_argument("--no-report", action="store_true",
                   help="skip the HTML/Markdown report (DIR/report/) written after the run")


def _check_run_flags(args) -> None:
    """Flag combinations argparse cannot express."""
    generic = [f for f in ("a", "x", "w") if getattr(args, f)]
    sources = [name for name, on in (("--a/--x/--w", generic), ("--conv2d", args.conv2d),
                                     ("--workload", args.workload)) if on]
    if len(sources) > 1:
        raise _UsageError(f"choose one problem: {' or '.join(sources)}")
    if generic and len(generic) < 3:
        missing = sorted({"a", "x", "w"} - set(generic))
        raise _UsageError(f"--a, --x and --w go together; missing "
                          f"{', '.join('--' + m for m in missing)}")
    conv_only = [f"--{f}" for f, dflt in (("image", None), ("kernel", None), ("stride", 1),
                                          ("padding", 0), ("dilation", 1), ("groups", 1),
                                          ("transposed", False))
                 if getattr(args, f) != dflt]
    if args.conv2d:
        if not (args.image and args.kernel):
            raise _UsageError("--conv2d needs --image and --kernel")
    elif conv_only:
        raise _UsageError(f"{', '.join(conv_only)}: only with --conv2d")
    graph_only = [f"--{f.replace('_', '-')}" for f, dflt in
                  (("features", GRAPH_FEATURES), ("feature_density", GRAPH_FEATURE_DENSITY))
                  if getattr(args, f) != dflt]
    if args.graph:
        if not args.workload:
            raise _UsageError("--graph needs --workload (gcn or gcn-2layer)")
        if args.workload not in GRAPH_WORKLOADS:
            raise _UsageError(f"--graph works with --workload "
                              f"{' or '.join(GRAPH_WORKLOADS)}, not {args.workload!r}")
    elif graph_only:
        raise _UsageError(f"{', '.join(graph_only)}: only with --graph")
    if args.contract == "exact" and (args.mid_shift or args.out_shift):
        raise _UsageError("--mid-shift, --out-shift: only with --contract int8")
    if args.workload and not args.graph and args.contract != "exact":
        raise _UsageError("--contract does not apply to a built-in --workload (it fixes its own)")


def _hardware(args) -> HardwareConfig:
    cfg = load_config(args.config) if args.config else HardwareConfig()
    overrides = {k: v for k, v in (("rows", args.rows), ("cols", args.cols),
                                   ("dram_bytes_per_cycle", args.dram_bytes_per_cycle))
                 if v is not None}
    return cfg.with_(**overrides) if overrides else cfg


def _contract(args, cfg: HardwareConfig) -> Contract:
    return make_contract(args.contract, cfg.operand_bits, cfg.acc_bits, args.mid_shift,
                         args.out_shift)


def _generic_problem(args, cfg):
    paths = (args.a, args.x, args.w)
    a, x, w = (load_matrix(p, what) for p, what in zip(paths, ("A", "X", "W")))
    name = "-".join(_stem(p) for p in paths)
    return name, make_problem(a, x, w, _contract(args, cfg), name, names=paths)


def _conv_problem(args, cfg):
    k = _contract(args, cfg)
    # validated here first so that a bad value is reported with its file
    image = as_int_dense(load_matrix(args.image, "image"), args.image, k.operand, ndim=3)
    kernel = as_int_dense(load_matrix(args.kernel, "kernel"), args.kernel, k.operand, ndim=4)
    build = conv_transpose2d if args.transposed else conv2d
    name = f"{build.__name__}-{_stem(args.image)}-{_stem(args.kernel)}"
    return name, build(image, kernel, args.stride, args.padding, args.dilation, args.groups,
                       contract=k, name=name)


def _graph_problem(args, cfg):
    name = f"{args.workload}-{_stem(args.graph)}"
    with _about(args.graph):
        adj = load_matrix(args.graph, "graph")
        if adj.ndim != 2:
            raise ShapeError(f"adjacency must be 2-D, got shape {adj.shape}")
        x = density_matched_features(adj.shape[0], args.features, args.feature_density,
                                     args.seed + 1)
        model = gcn_model(adj, x, hidden=16, classes=7, seed=args.seed,
                          contract=_contract(args, cfg), name=name)
    return name, (model if GRAPH_WORKLOADS[args.workload] == 2 else model.layer1())


def _problem(args, cfg):
    """(name, what to run) for the flags in ``args``."""
    if args.a:
        return _generic_problem(args, cfg)
    if args.conv2d:
        return _conv_problem(args, cfg)
    if args.graph:
        return _graph_problem(args, cfg)
    if args.workload:
        return args.workload, get_workload(args.workload, seed=args.seed)
    return "default", cora_like(args.seed, contract=_contract(args, cfg))


def _warm_simulator() -> None:
    """Load the simulator kernel in the background while the problem is built."""
    def warm():
        import sim
        sim.warm_up()
    threading.Thread(target=warm, name="axw-warm-up", daemon=True).start()


def cmd_run(args) -> int:
    _check_run_flags(args)
    simulator = getattr(args, "simulator", None)
    if simulator is None:
        _warm_simulator()
    cfg = _hardware(args)
    name, source = _problem(args, cfg)
    out = Path(args.out) if args.out else RUNS_DIR / _slug(name)
    res = run_problems(source, cfg, order=args.order, out_dir=out,
                       stall_permille=args.stall_permille, stall_seed=args.stall_seed,
                       simulator=simulator)
    n = len(res.layers)
    if not args.no_report:
        # the report is a view of the run; a failure to draw it must not hide the results
        try:
            from reports.report import write_report
            write_report([out], out / "report")
        except (AxwError, OSError, ValueError) as e:
            print(f"accel: warning: report not written: {e}", file=sys.stderr)
    print(f"out dir      {out}")
    print(f"cycles       {res.cycles:,}" + (f" ({n} layers)" if n > 1 else ""))
    print(f"utilization  {100.0 * res.utilization:.1f} %")
    print(f"bit_exact    {str(res.bit_exact).lower()}")
    if res.bit_exact:
        return EXIT_OK
    bad = next(lr for lr in res.layers if not lr.bit_exact)
    _error(f"simulated output of {bad.problem.name} is not bit-exact "
           f"({_mismatch_text(bad.stats)}); results in {out}")
    return EXIT_NOT_EXACT


def _mismatch_text(layer_stats: dict) -> str:
    first = layer_stats["first_mismatch"]
    if layer_stats["mismatches"] is None:
        return f"shape {tuple(first['sim_shape'])} vs reference {tuple(first['ref_shape'])}"
    return (f"{layer_stats['mismatches']} elements differ, first at ({first['row']}, "
            f"{first['col']}): simulated {first['sim']}, reference {first['ref']}")


# ----------------------------------------------------------------------------- main

#: Subcommands: name -> (help, add_arguments, run, description).  ``hdl``, ``report`` and
#: ``dse`` will be added here, each with its own pair of functions.
COMMANDS: dict[str, tuple[str, Callable, Callable, str]] = {
    "run": ("compile, simulate and check one problem; write its results",
            _add_run_command_arguments, cmd_run, _RUN_DESCRIPTION),
    "report": ("HTML + Markdown report (plots, glossary) of one or more run folders",
               add_report_arguments, cmd_report, _REPORT_DESCRIPTION),
    "dse": ("design-space sweep: analytical model on every point, simulator on some",
            add_dse_arguments, cmd_dse, _DSE_DESCRIPTION),
    "hdl": ("write the Verilog bundle (core, self-checking test bench, images); synthesize",
            add_hdl_arguments, cmd_hdl, HDL_DESCRIPTION),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accel", description="AXW: Y = A·X·W on a sparse-A / dense-W systolic array.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, add_arguments, run, description) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(p)
        p.set_defaults(run=run, subparser=p)
    return parser


def _error(message: str) -> None:
    print(f"accel: error: {' '.join(message.split())}", file=sys.stderr)


def _tune_malloc() -> None:
    """Keep freed arrays in the heap instead of returning them to the kernel.

    The compiler and the simulator allocate and free many arrays of a few to a few tens of
    megabytes; glibc's default gives each back with munmap, so the next one page-faults
    afresh (about a third of the compile time of a 1.7M-element layer).  Fixing the mmap
    threshold at its maximum (32 MiB) and never trimming the heap reuses the pages.
    Linux/glibc only; elsewhere nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 2 ** 31 - 1)
    except (OSError, AttributeError, ctypes.ArgumentError):   # not glibc
        pass


def main(argv: list[str] | None = None, *, simulator=None) -> int:
    """Entry point of the ``accel`` console script; returns the exit status.

    ``simulator``: what ``accel run`` simulates with (an :class:`accel.simproc.SimProcess`
    started by :mod:`accel.console`); by default the :mod:`sim` module in this process.
    """
    _tune_malloc()
    args = build_parser().parse_args(argv)
    args.simulator = simulator
    try:
        return args.run(args)
    except _UsageError as e:
        args.subparser.error(str(e))  # argparse's usage message and exit status 2
    except AxwError as e:
        _error(str(e))
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
