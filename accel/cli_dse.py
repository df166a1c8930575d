"""The ``accel dse`` subcommand: a design-space sweep with the analytical model and the simulator."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["DESCRIPTION", "add_dse_arguments", "cmd_dse"]

DESCRIPTION = """\
Sweep a design space: SPACE.toml gives a list of values per HardwareConfig field
(e.g. rows = [4, 8, 16], dram_bytes_per_cycle = [8, 32]) and may fix other fields with a
single value (and `preset = NAME` as the base); unknown fields are errors. Every point of
the cross product is evaluated with the analytical model (accel.model); --verify also runs
the cycle-level simulator on all points, on the Pareto front (default), or none, and the
model's measured error against it is printed.

The problem is chosen as in `accel run` (--workload NAME, --a/--x/--w, --conv2d, --graph);
without one, the built-in default workload (gcn-cora-like, GCN layer 1). --config gives
the base hardware the space is applied to.

Written to --out: results.csv (one row per point: config_id, the swept fields,
cycles_model, cycles_sim where simulated, model_error, utilization, off-chip bytes,
energy, LUT/FF/DSP/BRAM/Fmax from the resource model, Pareto flags), summary.json,
pareto_energy.png and pareto_resources.png. points.jsonl and sim.jsonl hold finished
points as they finish: a killed sweep rerun with the same --out resumes without
recomputing or duplicating any point.
"""


def add_dse_arguments(p: argparse.ArgumentParser) -> None:
    from . import cli
    cli._add_run_arguments(p)          # the same problem and hardware options as `accel run`
    g = p.add_argument_group("design-space exploration")
    g.add_argument("--space", metavar="SPACE.toml", required=True, help="the design space")
    g.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="simulator processes (default 1)")
    g.add_argument("--verify", choices=("all", "pareto", "none"), default="pareto",
                   help="simulate all points, the Pareto front (default) or none")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask distributed scheduler (tcp://host:port) for the simulations")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_dse(args) -> int:
    from . import cli
    from .dse import DseError, load_space, sweep
    if not args.out:
        raise DseError("--out DIR is required")
    if args.stall_permille:
        raise DseError("--stall-permille does not apply to a sweep")
    cli._check_run_flags(args)
    base = cli._hardware(args)
    space = load_space(args.space)
    if args.a or args.conv2d or args.graph or args.workload:
        _, source = cli._problem(args, base)
    else:
        source = None
    rows = sweep(source, space, out_dir=args.out, verify=args.verify, jobs=args.jobs,
                 scheduler=args.scheduler, order=args.order, base=base, seed=args.seed,
                 progress=False if args.no_progress else None)
    s = sweep.last_summary
    out = Path(args.out)
    print(f"points       {s['points']} ({s['invalid_points']} invalid combinations skipped)")
    if s["model_points_per_second"]:
        print(f"model        {s['model_points_evaluated']} points in {s['model_seconds']:.2f} s "
              f"({s['model_points_per_second']:,.0f} points/s)")
    print(f"simulated    {s['simulated_points']} points ({s['sim_seconds']:.1f} s this run)")
    if s["model_error_median"] is not None:
        print(f"model error  median {100 * s['model_error_median']:.2f} %, "
              f"max {100 * s['model_error_max']:.2f} % (|cycles_model / cycles_sim - 1| "
              f"over the simulated points)")
    best = min(rows, key=lambda r: r["cycles_model"])
    print(f"fastest      {best['config_id']} {best['cycles_model']:,.0f} cycles (model)")
    if s["resources_calibrated"]:
        from reports.resources import DEVICE_NAME, error_text
        print(f"resources    calibrated model (leave-one-out error median/max: "
              f"{error_text(s['resources_error_loo'])}); {s['points_fitting_device']} of "
              f"{s['points']} points fit the {DEVICE_NAME}")
    else:
        print("resources    UNCALIBRATED estimates")
    print(f"results      {out / 'results.csv'}")
    return 0
