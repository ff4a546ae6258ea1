"""bench_rounds.py: the statistics scripts/bench.sh and scripts/bench-conv.sh print, imported by their
report code (never run alone). Both scripts run R rounds, each round every configuration once, and
write one JSON line per configuration and round: {"round": r, "what": NAME, ...}.

This machine's speed moves 10-15% between runs minutes apart, so a ratio of two configurations is
computed within each round (both sides measured minutes apart at most) and summarised as the median of
those per-round ratios with their min-max over the rounds: the paired figure, on which a target's
verdict rests. The ratio of the two configurations' medians (what the scripts printed before) is shown
beside it, for comparison with earlier runs. A figure is a function f(g) of an accessor
g(what, key="samples_per_s"): for round r, g reads that round's row; for the medians, g reads the
median of the key over the rounds, so that one definition gives both.
"""
import json
import operator
import re
import statistics


class Rounds:
    def __init__(self, path):
        self.rows = [json.loads(line) for line in open(path)]
        self.n = max(r["round"] for r in self.rows)
        self.by = {}
        for r in self.rows:
            key = (r["round"], r["what"])
            if key in self.by:
                raise SystemExit(f"bench_rounds: {r['what']} twice in round {r['round']}")
            self.by[key] = r

    def derive(self, what, f):
        """Adds the row WHAT to every round: f(g) -> dict of its keys (e.g. floor2, two copies summed)."""
        for i in range(1, self.n + 1):
            self.by[(i, what)] = dict(f(self.at(i)), what=what, round=i)

    def at(self, i):
        def g(what, key="samples_per_s"):
            row = self.by.get((i, what))
            if row is None:
                raise SystemExit(f"bench_rounds: no {what} in round {i}")
            return row[key]

        return g

    def med(self, what, key="samples_per_s"):
        return statistics.median(self.at(i)(what, key) for i in range(1, self.n + 1))

    def each(self, f):
        """f over every round: the per-round values."""
        return [f(self.at(i)) for i in range(1, self.n + 1)]

    def of_medians(self, f):
        return f(self.med)

    def kernels(self, what):
        return "/".join(sorted({r.get("blas_core", "?") for (_, w), r in self.by.items() if w == what}))

    def loads(self):
        """The load average (1 min) at each round's start, as the scripts recorded it."""
        return " ".join(f"{self.at(i)('load', 'load1'):.2f}" for i in range(1, self.n + 1))


def spread(vals, fmt="{:.3f}", mid=None):
    """'median (min-max)' of per-round values (mid: the middle value to show instead of their median);
    the median alone for one round."""
    m = fmt.format(statistics.median(vals) if mid is None else mid)
    return m if len(vals) == 1 else f"{m} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def verdict(target, vals):
    """'met' / 'not met' by the median of the per-round values, and in how many rounds; '' when the
    target is not a bound ('(which to launch)', '')."""
    m = re.match(r"\s*(>=|<=|<|>)\s*([0-9.]+)", target)
    if not m:
        return ""
    op, bound = OPS[m.group(1)], float(m.group(2))

    def ok(v):
        return op(v, bound)

    said = "met" if ok(statistics.median(vals)) else "not met"
    return said if len(vals) == 1 else f"{said} (in {sum(map(ok, vals))} of {len(vals)} rounds)"


def ratio_table(R, checks, title="ratio"):
    """checks: (name, f, target); prints the per-round median (min-max), the ratio of medians, the
    target and the verdict on the per-round median."""
    w = max(len(title), *(len(c[0]) for c in checks))
    paired = "median (min-max) over rounds" if R.n > 1 else "value (1 round)"
    print(f"\n  {title:{w}s} {paired:>29s} {'of medians':>10s}  target: verdict on the per-round median")
    for name, f, target in checks:
        vals = R.each(f)
        v = verdict(target, vals)
        print(f"  {name:{w}s} {spread(vals):>29s} {R.of_medians(f):10.3f}  {target}{': ' + v if v else ''}".rstrip())


def ceiling(R, floor2, targets, best=None):
    """The ceiling of any 'x DDP' figure (the 2-core GEMM floor over DDP), and for each target
    (x, what, ddp): the fraction of the 2-core floor that x times DDP needs, per round. best: (name, f)
    of the best layout, whose fraction of the floor is shown beside."""
    ddp0 = targets[0][2]
    c = R.each(lambda g: floor2(g) / ddp0(g))
    cm = R.of_medians(lambda g: floor2(g) / ddp0(g))
    rng = f" (rounds {min(c):.2f}-{max(c):.2f}, ratio of the medians {cm:.2f}x)" if R.n > 1 else ""
    print(f"\n  ceiling: 2-core floor / DDP = {statistics.median(c):.2f}x{rng}: the most any implementation doing"
          f" these GEMMs with this OpenBLAS on these cores can reach")
    for x, what, ddp in targets:
        # x / the ceiling of each round against this target's DDP; the middle value is x / the median of
        # those ceilings (the median of the fractions itself for an odd number of rounds)
        need = R.each(lambda g: x * ddp(g) / floor2(g))
        mid = x / statistics.median(R.each(lambda g: floor2(g) / ddp(g)))
        say = "within the ceiling" if mid <= 1 else "beyond the ceiling, out of reach today"
        if R.n > 1:
            say += f" (within it in {sum(v <= 1 for v in need)} of {R.n} rounds)"
        print(f"    {x:.1f}x {what} needs {spread(need, '{:.2f}', mid)} of the 2-core floor: {say}")
    if best:
        name, f = best
        print(f"    the best layout ({name}) reached {spread(R.each(lambda g: f(g) / floor2(g)))} of it")
