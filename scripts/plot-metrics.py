#!/usr/bin/python3
"""plot-metrics.py DIR: DIR/metrics.jsonl (written by vae_mpi train) -> DIR/curves.png, three panels
(reconstruction, KL, ELBO; nats per image) of the train and test figures against the epoch.

Run with Debian's /usr/bin/python3 (matplotlib, Agg backend: no display needed). The PNG is written
to a temporary name in DIR and renamed into place. Never modifies metrics.jsonl."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fail(msg):
    print(f"plot-metrics: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_epochs(path):
    if not os.path.isfile(path):
        fail(f"{path} does not exist; pass the --out folder of a vae_mpi train run")
    recs = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path} line {i} is not JSON ({e.msg})")
            if r.get("type") == "epoch":
                recs.append(r)
    if not recs:
        fail(f"{path} holds no epoch records yet; plot after the first epoch has finished")
    return recs


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: plot-metrics.py DIR   (reads DIR/metrics.jsonl, writes DIR/curves.png)",
              file=sys.stderr if len(sys.argv) != 2 else sys.stdout)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    d = sys.argv[1]
    recs = read_epochs(os.path.join(d, "metrics.jsonl"))
    ep = [r["epoch"] for r in recs]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(axes, ["recon", "kl", "elbo"],
                              ["reconstruction -log p(x|z)", "KL(q(z|x) || p(z))", "ELBO"]):
        ax.plot(ep, [r[f"train_{key}"] for r in recs], "o-", ms=3, label="train")
        test = [(e, r[f"test_{key}"]) for e, r in zip(ep, recs) if r.get(f"test_{key}") is not None]
        if test:
            ax.plot([t[0] for t in test], [t[1] for t in test], "s-", ms=3, label="test")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = os.path.join(d, "curves.png")
    tmp = os.path.join(d, f".curves.png.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, dpi=80, format="png")
        os.replace(tmp, out)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        fail(f"cannot write {out}: {e.strerror}")
    print(f"plot-metrics: wrote {out} ({len(recs)} epochs)")


if __name__ == "__main__":
    main()
