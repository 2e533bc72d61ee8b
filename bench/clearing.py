"""Clearing benchmark: file mode end to end, and the engine against networkx.

    python -m bench.clearing                      # full size: 1,000,000 obligations
    python -m bench.clearing --smoke              # seconds, for CI: checks agreement only
    python -m bench.clearing --obligations 200000 --participants 20000 --repeat 1

1. End to end: `python -m clearing FILE -o OUT --summary S` against a baseline that does the
   least work: parse the CSV with the same reader as file mode (pandas' C reader), amounts to
   integers, sum per pair, one bare OR-Tools SimpleMinCostFlow on all pairs, nothing written
   (`--baseline FILE`, below). The ratio measures exactly Commons' extra work. Both run as
   fresh processes, interleaved, best of `--repeat`; wall time, CPU time (user + sys) and
   peak memory of each.
2. Engine against networkx at 100,000 obligations: `clear()` against `network_simplex` on the
   same min-cost-flow formulation (remainders, supplies from net positions, unit costs), in
   this process, on the same parsed obligations.
Both sides must find the same optimum; the run fails (exit 1) if they do not.

Files come from shared/tools/gen_obligations.py (region shape) and are cached in
bench/out/clearing/ (git-ignored), so a second run does not generate them again.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if not __package__:  # `python bench/clearing.py`: this file must not shadow the package
    sys.path[0] = str(REPO)
GENERATOR = REPO.parent / "shared" / "tools" / "gen_obligations.py"
CACHE = REPO / "bench" / "out" / "clearing"
SEED = 7
TARGET_RATIO = 1.5  # end to end within 1.5 x (CSV parse + bare solve)
TARGET_SPEEDUP = 50.0  # engine at least 50 x faster than networkx


# --- the baseline: as little as possible around the solver ---------------------------------


def baseline(path: Path) -> dict[str, Any]:
    """The least work around the solver: parse the CSV with the same parser as file mode
    (pandas' C reader, every field as text), amounts to integers without any check, sum per
    (debtor, creditor) pair, one bare SimpleMinCostFlow on all pairs, nothing written.

    The cyclic garbage collector is off here as in file mode, so the comparison measures the
    file mode's own work, not the collector.
    """
    import numpy as np
    import pandas as pd
    from ortools.graph.python import min_cost_flow

    gc.disable()
    frame = pd.read_csv(path, dtype=object, na_filter=False, engine="c")
    digits = "\n".join(frame["amount"].tolist()).replace(".", "")  # always 2 decimals
    amounts = np.fromstring(digits, dtype=np.int64, sep="\n")
    debtors, creditors = frame["debtor"].to_numpy(), frame["creditor"].to_numpy()
    codes, names = pd.factorize(np.concatenate([debtors, creditors]))
    n = len(names)
    pairs, pair_of = np.unique(codes[: len(frame)] * n + codes[len(frame) :], return_inverse=True)
    totals = np.zeros(len(pairs), dtype=np.int64)
    np.add.at(totals, pair_of, amounts)
    tails, heads = pairs // n, pairs % n
    supplies = np.zeros(n, dtype=np.int64)
    np.add.at(supplies, tails, totals)
    np.subtract.at(supplies, heads, totals)
    solver = min_cost_flow.SimpleMinCostFlow()
    solver.add_arcs_with_capacity_and_unit_cost(tails, heads, totals, np.ones(len(pairs), dtype=np.int64))
    solver.set_nodes_supplies(np.arange(n), supplies)
    if solver.solve() != solver.OPTIMAL:
        raise SystemExit("baseline: solver failed")
    return {"setoff": int(totals.sum()) - solver.optimal_cost(), "pairs": len(pairs)}


# --- measuring child processes -------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mib: float
    stdout: str


def child_environment(cache: Path) -> dict[str, str]:
    """As an installed copy runs: with compiled bytecode. Some shells here set
    PYTHONDONTWRITEBYTECODE, which makes every run recompile typer and rich from source
    (about 0.4 s); the bytecode goes to the bench cache, not into the tree or the venv."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(cache / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(command: list[str], env: dict[str, str]) -> Run:
    """Wall time, CPU time and peak RSS of one fresh process (os.wait4: its own rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            message = err.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{message}")
        stdout = out.read().decode()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


# --- datasets ------------------------------------------------------------------------------


def dataset(generator: Path, cache: Path, participants: int, obligations: int) -> Path:
    path = cache / f"region-{participants}-{obligations}-{SEED}.csv"
    if path.exists():
        return path
    if not generator.exists():
        raise SystemExit(f"generator not found at {generator} (use --generator)")
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    shape = ["region", str(participants), str(obligations), str(SEED), str(partial)]
    print(f"generating {path.name} …", flush=True)
    subprocess.run([sys.executable, str(generator), *shape], check=True)
    partial.rename(path)
    return path


# --- the two comparisons -------------------------------------------------------------------


def end_to_end(path: Path, repeat: int, scratch: Path) -> dict[str, Any]:
    output, summary = scratch / "result.csv", scratch / "summary.json"
    file_mode = [sys.executable, "-m", "clearing", str(path), "-o", str(output)]
    file_mode += ["--summary", str(summary)]
    bare = [sys.executable, "-m", "bench.clearing", "--baseline", str(path)]
    env = child_environment(scratch.parent)
    ours: list[Run] = []
    theirs: list[Run] = []
    for _ in range(repeat):  # interleaved, so a busy moment hurts both sides alike
        theirs.append(run_child(bare, env))
        ours.append(run_child(file_mode, env))
    figures = json.loads(summary.read_text())
    expected = json.loads(best(theirs).stdout)["setoff"]
    found = int(figures["setoff"].replace(".", ""))
    if found != expected:
        raise SystemExit(f"file mode set off {found}, the bare solver {expected}")
    a, b = best(ours), best(theirs)
    return {
        "obligations": figures["obligations"],
        "participants": figures["participants"],
        "setoff_cents": found,
        "setoff_fraction": figures["setoff_fraction"],
        "file_mode": vars(a) | {"stdout": None, "all_walls": [r.wall for r in ours]},
        "baseline": vars(b) | {"stdout": None, "all_walls": [r.wall for r in theirs]},
        "ratio_wall": a.wall / b.wall,
        "ratio_cpu": min(r.cpu for r in ours) / min(r.cpu for r in theirs),
    }


def stages(path: Path, scratch: Path) -> dict[str, float]:
    """Where file mode's time goes, measured in this process the way the command runs it."""
    from clearing.engine import clear_table
    from clearing.fileio import read_table, write_result_csv

    gc.disable()
    try:
        t0 = time.perf_counter()
        table = read_table(path, scale=2)
        t1 = time.perf_counter()
        result = clear_table(table, report_cycles=False)
        t2 = time.perf_counter()
        write_result_csv(scratch / "stages.csv", result, scale=2)
        t3 = time.perf_counter()
    finally:
        gc.enable()
    del table, result
    return {"read": t1 - t0, "clear": t2 - t1, "write": t3 - t2}


@dataclass
class Timing:
    wall: float
    cpu: float


def timed(work: Callable[[], Any]) -> tuple[Any, Timing]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = work()
    return value, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def networkx_setoff(items: list[Any]) -> tuple[int, Timing]:
    """The engine's formulation, written for networkx: remainders as a flow with supplies
    from the net positions, capacity = the pair's amount, unit cost. Also returns the time
    of network_simplex alone, without building the graph."""
    import networkx as nx

    totals: dict[tuple[str, str], int] = {}
    for o in items:
        totals[(o.debtor, o.creditor)] = totals.get((o.debtor, o.creditor), 0) + o.amount
    graph = nx.DiGraph()
    demand: dict[str, int] = {}
    for (debtor, creditor), amount in totals.items():
        graph.add_edge(debtor, creditor, capacity=amount, weight=1)
        demand[debtor] = demand.get(debtor, 0) - amount
        demand[creditor] = demand.get(creditor, 0) + amount
    nx.set_node_attributes(graph, demand, "demand")
    (cost, _), solve = timed(lambda: nx.network_simplex(graph))
    return sum(totals.values()) - int(cost), solve


def against_networkx(path: Path, repeat: int) -> dict[str, Any]:
    from clearing.columns import Columns
    from clearing.engine import clear
    from clearing.fileio import read_obligations
    from clearing.flow import max_setoff
    from clearing.graph import aggregate, strongly_connected_components

    items = read_obligations(path, scale=2)
    clear(items[:100])  # the first call pays one-off imports inside OR-Tools
    runs = [timed(lambda: clear(items, report_cycles=False)) for _ in range(repeat)]
    result = runs[0][0]
    engine = Timing(min(t.wall for _, t in runs), min(t.cpu for _, t in runs))
    with_cycles, cycles_time = timed(lambda: clear(items))
    graph = aggregate(Columns.of(items).table())
    n = graph.num_nodes
    solves = [timed(lambda: max_setoff(n, graph.tails, graph.heads, graph.amounts))[1] for _ in range(repeat)]
    sccs = [
        timed(lambda: strongly_connected_components(n, graph.tails, graph.heads))[1] for _ in range(repeat)
    ]
    engine_solve = Timing(min(t.wall for t in solves), min(t.cpu for t in solves))
    engine_scc = Timing(min(t.wall for t in sccs), min(t.cpu for t in sccs))
    (nx_setoff, nx_solve), networkx = timed(lambda: networkx_setoff(items))
    if nx_setoff != result.total_setoff or with_cycles.total_setoff != result.total_setoff:
        raise SystemExit(f"engine set off {result.total_setoff}, networkx {nx_setoff}")
    return {
        "obligations": len(items),
        "participants": len(result.participants),
        "pairs": result.stats.pairs,
        "engine": vars(engine),
        "engine_with_cycles": vars(cycles_time),
        "engine_solve": vars(engine_solve),
        "engine_scc": vars(engine_scc),
        "cycles": len(with_cycles.cycles or ()),
        "networkx": vars(networkx),
        "networkx_solve": vars(nx_solve),
        "speedup_wall": networkx.wall / engine.wall,
        "speedup_cpu": networkx.cpu / engine.cpu,
        "solver_speedup_cpu": nx_solve.cpu / engine_solve.cpu,
    }


# --- report --------------------------------------------------------------------------------


def report(e2e: dict[str, Any], parts: dict[str, float], nx: dict[str, Any], smoke: bool) -> None:
    from bench._common import machine  # here, not at the top: the baseline child must not load it

    a, b = e2e["file_mode"], e2e["baseline"]
    print(f"\nmachine: {machine()}")
    print(
        f"\nend to end, {e2e['obligations']:,} obligations, {e2e['participants']:,} participants "
        f"(set off {e2e['setoff_fraction']} of the debt, same optimum on both sides)"
    )
    print(f"  {'':32} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}")
    for label, r in (("file mode (python -m clearing)", a), ("CSV parse + bare OR-Tools", b)):
        print(f"  {label:32} {r['wall']:8.2f} {r['cpu']:8.2f} {r['peak_mib']:9.0f}")
    ratios = f"{e2e['ratio_wall']:.2f} x wall, {e2e['ratio_cpu']:.2f} x cpu"
    met = e2e["ratio_wall"] <= TARGET_RATIO
    print(f"  ratio: {ratios} (target ≤ {TARGET_RATIO}){verdict(met, smoke)}")
    print("  file mode stages in-process: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    size = f"{nx['obligations']:,} obligations, {nx['participants']:,} participants"
    print(f"\nengine against networkx, {size}, {nx['pairs']:,} pairs")
    print(f"  {'':32} {'wall s':>8} {'cpu s':>8}")
    rows = (
        ("clear()", nx["engine"]),
        (f"clear() + cycle report ({nx['cycles']:,})", nx["engine_with_cycles"]),
        ("  of which SCC + OR-Tools solve", nx["engine_solve"]),
        ("    of which SCC (Tarjan)", nx["engine_scc"]),
        ("networkx: aggregate, build, solve", nx["networkx"]),
        ("  of which network_simplex", nx["networkx_solve"]),
    )
    for label, t in rows:
        print(f"  {label:32} {t['wall']:8.2f} {t['cpu']:8.2f}")
    speedups = f"{nx['speedup_wall']:.1f} x wall, {nx['speedup_cpu']:.1f} x cpu"
    met = nx["speedup_wall"] >= TARGET_SPEEDUP
    print(f"  speed-up: {speedups} (target ≥ {TARGET_SPEEDUP:.0f}){verdict(met, smoke)}")
    print(f"  solver alone: {nx['solver_speedup_cpu']:.1f} x cpu (network_simplex / SCC + OR-Tools solve)")
    budget = nx["networkx"]["cpu"] / TARGET_SPEEDUP
    print(
        f"  {TARGET_SPEEDUP:.0f} x needs clear() within {budget:.3f} s cpu; "
        f"SCC + solve alone take {nx['engine_solve']['cpu']:.3f} s"
    )


def verdict(met: bool, smoke: bool) -> str:
    if smoke:
        return ""
    return "  target met" if met else "  TARGET MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clearing", description=__doc__.split("\n")[0])
    parser.add_argument("--obligations", type=int, default=1_000_000)
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--nx-obligations", type=int, default=100_000)
    parser.add_argument("--nx-participants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best counts")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for CI; no targets")
    parser.add_argument("--generator", type=Path, default=GENERATOR)
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline is not None:
        print(json.dumps(baseline(args.baseline)))
        return
    if args.smoke:
        args.obligations, args.participants = 20_000, 2_000
        args.nx_obligations, args.nx_participants, args.repeat = 5_000, 500, 1
    big = dataset(args.generator, args.cache_dir, args.participants, args.obligations)
    small = dataset(args.generator, args.cache_dir, args.nx_participants, args.nx_obligations)
    scratch = args.cache_dir / f"run-{os.getpid()}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        e2e = end_to_end(big, args.repeat, scratch)
        parts = stages(big, scratch)
        nx = against_networkx(small, args.repeat)
    finally:
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
    report(e2e, parts, nx, args.smoke)
    if args.json is not None:
        from bench._common import machine

        figures = {"machine": machine(), "end_to_end": e2e, "stages": parts, "networkx": nx}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
