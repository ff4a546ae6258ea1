#!/usr/bin/env python3
"""What the gradient sum costs at scale: the standard alpha-beta model of MPI_Allreduce, fed with a latency
measured on a network (scripts/cluster/bench-comm.sh measures it on the namespace cluster) and the link
rates of real clusters, against the compute time of a training step.

    ring  (reduce-scatter + allgather, Patarasuk & Yuan):  T = 2 (p-1) a + 2 (p-1)/p n / B
    tree  (binomial reduce, then broadcast, unpipelined):  T = 2 ceil(log2 p) (a + n / B)

a: latency of one message (half a round trip), n: gradient bytes, B: link rate in bytes/s, p: ranks, one
per node (the links between nodes are the bottleneck; ranks inside a node sum over shared memory first,
which leaves the inter-node part as is). The reduction's arithmetic (n / p floats added per step, at
memory speed) is left out: a few percent of the transfer at these rates.

Per step: compute c (forward + backward + Adam, measured), of which the backward pass is about 2/3
(twice the forward's FLOPs). Without overlap the sum follows the backward pass: step = c + T, share =
T / (c + T). Overlapping it with the backward pass (DDP's gradient buckets) hides up to the backward
time: exposed = max(0, T - 2c/3). A bf16 gradient halves n (the bandwidth term); the latency term stays.

    scripts/cluster/cost-model.py --alpha-us 25 --mlp-step-ms 9.4 --conv-step-ms 60 [--json]
"""
import argparse
import json
import math

MLP_FLOATS = 652824    # 784-400-20-400-784 (the default model): vae_num_params
CONV_FLOATS = 1691369  # --conv 32,64 --hidden 256 --latent 20, kernel 4 stride 2 padding 1, 28x28x1


def ring(p, n, a, bw):
    return 2 * (p - 1) * a + 2 * (p - 1) / p * n / bw


def tree(p, n, a, bw):
    return 2 * math.ceil(math.log2(p)) * (a + n / bw)


def row(model, n, c, p, gbit, a):
    bw = gbit * 1e9 / 8
    out = {"model": model, "bytes": n, "ranks": p, "gbit": gbit, "compute_ms": c * 1e3}
    for name, f in (("ring", ring), ("tree", tree)):
        t = f(p, n, a, bw)
        t16 = f(p, n / 2, a, bw)
        exposed = max(0.0, t - 2 * c / 3)
        exposed16 = max(0.0, t16 - 2 * c / 3)
        out[name] = {"ms": t * 1e3, "share": t / (c + t), "overlap_share": exposed / (c + exposed),
                     "bf16_ms": t16 * 1e3, "bf16_share": t16 / (c + t16),
                     "bf16_overlap_share": exposed16 / (c + exposed16)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alpha-us", type=float, required=True, help="latency of one message, microseconds")
    ap.add_argument("--mlp-step-ms", type=float, required=True, help="compute of one MLP step, milliseconds")
    ap.add_argument("--conv-step-ms", type=float, required=True, help="compute of one conv step, milliseconds")
    ap.add_argument("--json", action="store_true", help="one JSON object per row instead of the table")
    a = ap.parse_args()
    alpha = a.alpha_us * 1e-6
    rows = [row(m, 4 * f, c * 1e-3, p, g, alpha)
            for m, f, c in (("MLP", MLP_FLOATS, a.mlp_step_ms), ("conv", CONV_FLOATS, a.conv_step_ms))
            for g in (10, 100) for p in (8, 32, 256)]
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"alpha {a.alpha_us:g} us; compute per step: MLP {a.mlp_step_ms:g} ms, conv {a.conv_step_ms:g} ms")
    print("communication share of a step (sum time in ms): no overlap | overlapped with backward | bf16 | "
          "bf16 + overlap")
    print(f"{'model':5} {'MB':>5} {'Gbit/s':>6} {'ranks':>5} | {'ring':^46} | {'tree':^46}")
    for r in rows:
        cells = []
        for k in ("ring", "tree"):
            x = r[k]
            cells.append(f"{x['share']:5.0%} ({x['ms']:7.2f}) {x['overlap_share']:5.0%} "
                         f"{x['bf16_share']:5.0%} ({x['bf16_ms']:7.2f}) {x['bf16_overlap_share']:5.0%}")
        print(f"{r['model']:5} {r['bytes'] / 1e6:5.2f} {r['gbit']:6} {r['ranks']:5} | {cells[0]} | {cells[1]}")


if __name__ == "__main__":
    main()
