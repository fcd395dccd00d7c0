#!/usr/bin/env python3
"""PNG plots from the experiments' raw results (matplotlib, no display needed).

    plot.py exp1 DIR IMG_DIR   # exp1-timeline.png (phi and status during one crash), exp1-detection.png
    plot.py exp2 DIR IMG_DIR   # exp2-fanout.png (convergence, reach in rounds, bytes vs fanout and size)
    plot.py exp3 DIR IMG_DIR   # exp3-partition.png (quorum on both sides, conviction, heal)
    plot.py exp4 DIR IMG_DIR   # exp4-health.png (producers' scores and where writes went)
"""

import csv
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 110


def load(path):
    with open(path) as f:
        return json.load(f)


def subtitle(d):
    p = os.path.join(d, "meta.json")
    if not os.path.exists(p):
        return ""
    m = load(p)
    return f"{m['command']} · {m['date_utc']} UTC · commit {m['commit']}"


def save(fig, img, name, d):
    fig.text(0.01, 0.005, subtitle(d), fontsize=7, color="grey")
    out = os.path.join(img, name)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    print(f"wrote {out}")


def exp1(d, img):
    nets = [n for n in ("quiet", "noisy") if os.path.exists(os.path.join(d, f"timeline-{n}.json"))]
    fig, axes = plt.subplots(2, len(nets), figsize=(6 * len(nets), 7), sharex="col", squeeze=False)
    for c, net in enumerate(nets):
        r = load(os.path.join(d, f"timeline-{net}.json"))
        tl = r["outcome"]["timeline"]
        thr = tl["phi_threshold"]
        s = tl["samples"]
        t = [x["t"] for x in s]
        width = max((len(x["phi"]) for x in s), default=0)
        ax = axes[0][c]
        for k in range(width):
            pts = [(x["t"], x["phi"][k]) for x in s if len(x["phi"]) > k]
            ax.plot([p[0] for p in pts], [min(p[1], 30) for p in pts], lw=1.2, label=f"observer {k + 1}")
        ax.axhline(thr, color="red", ls="--", lw=1, label=f"threshold {thr:g}")
        ax.axhline(thr / 2, color="orange", ls=":", lw=1, label="half threshold (voter doubted)")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_ylim(0, 30)
        ax.set_ylabel("phi at the member's observers (capped at 30)")
        cfg = r["config"]
        ax.set_title(f"{r['nodes']} nodes, {net}: jitter {cfg['jitter_ms']:g} ms, loss {cfg['loss'] * 100:g} %\n"
                     f"{tl['member']} crashes at t = 0 (seed {r['seed']})", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1][c]
        ax.stackplot(t, [x["alive"] for x in s], [x["suspect"] for x in s], [x["failed"] for x in s],
                     labels=["sees it ALIVE", "SUSPECT", "FAILED"], colors=["#4caf50", "#ffb300", "#e53935"])
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("seconds since the crash (virtual time)")
        ax.set_ylabel("live members")
        ax.legend(fontsize=7, loc="center left")
    fig.suptitle("Experiment 1: one crash, phi and status over time (vigil-sim --timeline)")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    save(fig, img, "exp1-timeline.png", d)

    # Detection time and false positives per setting.
    rows = list(csv.DictReader(open(os.path.join(d, "detection.csv"))))
    fps = list(csv.DictReader(open(os.path.join(d, "false_positives.csv"))))
    settings = []
    for r in rows:
        if r["setting"] not in settings:
            settings.append(r["setting"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, net in enumerate(("quiet", "noisy")):
        ys = [next((float(r["all_failed_p50_s"]) for r in rows if r["network"] == net and r["setting"] == s
                    and r["all_failed_p50_s"]), 0) for s in settings]
        mx = [next((float(r["all_failed_max_s"]) for r in rows if r["network"] == net and r["setting"] == s
                    and r["all_failed_max_s"]), 0) for s in settings]
        xs = [i + (k - 0.5) * 0.38 for i in range(len(settings))]
        a1.bar(xs, ys, width=0.38, label=f"{net}: median")
        a1.scatter(xs, mx, marker="_", s=200, color="black", zorder=3, label="max" if k == 0 else None)
    a1.set_xticks(range(len(settings)), settings, rotation=20)
    a1.set_ylabel("crash -> FAILED at every live member (s)")
    a1.set_title("detection time (100 nodes, 5 crashes x 3 seeds)", fontsize=10)
    a1.legend(fontsize=8)
    noises = []
    for r in fps:
        if r["noise"] not in noises:
            noises.append(r["noise"])
    for k, noise in enumerate(noises):
        ys = [next((float(r["suspect_marks_per_node_hour"]) for r in fps if r["noise"] == noise and r["setting"] == s), 0)
              for s in settings]
        xs = [i + (k - (len(noises) - 1) / 2) * 0.27 for i in range(len(settings))]
        a2.bar(xs, ys, width=0.27, label=f"{noise}")
        for x, s in zip(xs, settings):
            fp = next((int(r["false_positives"]) for r in fps if r["noise"] == noise and r["setting"] == s), 0)
            if fp:
                a2.annotate(f"{fp} FP", (x, 0), rotation=90, fontsize=7, color="red", ha="center", va="bottom")
    a2.set_xticks(range(len(settings)), settings, rotation=20)
    a2.set_yscale("symlog", linthresh=1)
    a2.set_ylabel("members marked SUSPECT, per node per hour")
    a2.set_title("100 nodes, 300 s of noise: suspicions (all refuted unless FP: false FAILED events)", fontsize=10)
    a2.legend(fontsize=8, title="jitter ms - loss %", title_fontsize=8)
    fig.suptitle("Experiment 1: phi threshold and hard failure timeout")
    fig.tight_layout(rect=(0, 0.02, 1, 0.96))
    save(fig, img, "exp1-detection.png", d)


def exp2(d, img):
    rows = list(csv.DictReader(open(os.path.join(d, "fanout.csv"))))
    sizes = sorted({int(r["nodes"]) for r in rows})
    fanouts = sorted({int(r["fanout"]) for r in rows})

    def mean(nodes, f, key):
        v = [float(r[key]) for r in rows if int(r["nodes"]) == nodes and int(r["fanout"]) == f and r[key]]
        return (sum(v) / len(v), min(v), max(v)) if v else (None, None, None)

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.3))
    panels = [("convergence_s", "cold join: all see all ALIVE (s)"),
              ("spread_p99_s", "one join/leave reaches all, p99 (s)"),
              ("reach_rounds_p99", "reach, p99 (gossip rounds of 200 ms)"),
              ("changes_bytes_per_node_s", "bytes/node/s while joins and leaves spread")]
    for ax, (key, label) in zip(axes, panels):
        for n in sizes:
            m = [mean(n, f, key) for f in fanouts]
            xs = [f for f, x in zip(fanouts, m) if x[0] is not None]
            ys = [x[0] for x in m if x[0] is not None]
            err = [[x[0] - x[1] for x in m if x[0] is not None], [x[2] - x[0] for x in m if x[0] is not None]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{n} nodes")
        ax.set_xticks(fanouts)
        ax.set_xlabel("gossip fanout")
        ax.set_title(label, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.suptitle("Experiment 2: gossip fanout vs convergence, propagation and bandwidth "
                 "(mean over seeds; bars: min-max)")
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    save(fig, img, "exp2-fanout.png", d)

    # The epidemic curve: share of members that know a change after k rounds.
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3.8), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        for f in fanouts:
            ps = sorted(glob.glob(os.path.join(d, f"join-n{n}-f{f}-s1.json")))
            if not ps:
                continue
            curve = load(ps[0])["outcome"].get("reach_rounds", {}).get("curve", [])
            ax.plot(range(len(curve)), [100 * c for c in curve], marker=".", label=f"fanout {f}")
        ax.set_xlabel("gossip rounds (200 ms) since the change")
        ax.set_ylabel("% of members that know it")
        ax.set_title(f"{n} nodes (seed 1, 5 joins + 5 leaves)", fontsize=10)
        ax.set_ylim(0, 102)
        ax.legend(fontsize=8)
    fig.suptitle("Experiment 2: how a membership change spreads")
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    save(fig, img, "exp2-spread.png", d)


def exp3(d, img):
    ps = sorted(glob.glob(os.path.join(d, "partition-*-timeline.json")))
    fig, axes = plt.subplots(1, len(ps), figsize=(6.5 * len(ps), 5.2), squeeze=False)
    for ax, p in zip(axes[0], ps):
        r = load(p)
        o = r["outcome"]
        tl = o["timeline"]
        s = tl["samples"]
        t = [x["t"] for x in s]
        mi, ma = o["minority"], o["majority"]
        ax.step(t, [100 * x["minority_quorum"] / mi for x in s], where="post", label=f"minority ({mi}) holding quorum")
        ax.step(t, [100 * x["majority_quorum"] / ma for x in s], where="post", label=f"majority ({ma}) holding quorum")
        ax.step(t, [100 * x["majority_sees_minority_failed"] / ma for x in s], where="post",
                label="majority nodes seeing the whole minority FAILED")
        ax.step(t, [100 if x["converged"] else 0 for x in s], where="post", ls=":", color="black",
                label="one view, everyone ALIVE")
        ax.axvline(0, color="red", lw=1)
        ax.axvline(tl["partition_s"], color="green", lw=1)
        ax.text(0.2, 103, "cut", color="red", fontsize=8)
        ax.text(tl["partition_s"] + 0.2, 103, "heal", color="green", fontsize=8)
        ax.set_xlabel("seconds since the cut (virtual time)")
        ax.set_ylabel("% of the side")
        ax.set_ylim(-3, 110)
        ax.set_title(f"{r['nodes']} nodes, {{{mi}}}|{{{ma}}}, seed {r['seed']}: fenced "
                     f"{o['minority_lost_quorum_s']} s, convicted {o['majority_failed_minority_s']} s, "
                     f"healed {o['heal_convergence_s']} s", fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.suptitle("Experiment 3: split brain (vigil-sim --scenario partition --timeline)")
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    save(fig, img, "exp3-partition.png", d)


def exp4(d, img, name="exp4-health.png"):
    info = load(os.path.join(d, "run.json"))
    samples = list(csv.DictReader(open(os.path.join(d, "samples.csv"))))
    routes = list(csv.DictReader(open(os.path.join(d, "routes.csv"))))
    prods = info["producers"]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for p in prods:
        pts = [(float(s["t"]), float(s[f"{p}_score"])) for s in samples if s.get(f"{p}_score")]
        a1.plot([x[0] for x in pts], [x[1] for x in pts], label=f"{p}{' (stressed)' if p == info['stressed'] else ''}")
        pts = [(float(s["t"]), float(s[f"{p}_phi"])) for s in samples if s.get(f"{p}_phi")]
        a2.plot([x[0] for x in pts], [x[1] for x in pts], label=p)
    st = info["stressed"]
    a2b = a2.twinx()
    for k, style in (("pressure", ":"), ("lag", "--")):
        pts = [(float(s["t"]), float(s[f"{st}_{k}"])) for s in samples if s.get(f"{st}_{k}")]
        if k == "lag":
            pts = [(t, min(100.0, v / 5)) for t, v in pts]  # 500 ms = 100
        a2b.plot([x[0] for x in pts], [x[1] for x in pts], color="grey", ls=style,
                 label=f"{st} {'CPU pressure %' if k == 'pressure' else 'lag (500 ms = 100)'}")
    a2b.set_ylabel("signal", color="grey")
    a2b.set_ylim(0, 105)
    a1.axhline(50, color="red", ls="--", lw=1, label="DEGRADED below 50")
    a1.set_ylabel("health score at the gateway")
    a1.set_ylim(0, 102)
    a1.legend(fontsize=8, loc="lower left")
    a2.set_ylabel("phi at the gateway")
    a2.legend(fontsize=8, loc="upper left")
    a2b.legend(fontsize=8, loc="upper right")
    # Share of writes per producer in 2 s buckets.
    end = max((float(r["t"]) for r in routes), default=0)
    buckets = [i * 2.0 for i in range(int(end // 2))]  # whole buckets only
    for p in prods:
        share = []
        for b in buckets:
            rr = [r for r in routes if b <= float(r["t"]) < b + 2 and r["status"] == "202"]
            share.append(100 * sum(1 for r in rr if r["routed_to"] == p) / len(rr) if rr else float("nan"))
        a3.step(buckets, share, where="post", label=p)
    a3.set_ylabel("% of writes routed to (2 s buckets)")
    a3.set_ylim(-3, 103)
    a3.set_xlabel("seconds")
    a3.legend(fontsize=8)
    for ax in (a1, a2, a3):
        for nm, a, b in info["phases"]:
            if nm == "stress":
                ax.axvspan(a, b, color="orange", alpha=0.15)
    how = info["stress_cmd"] + (f" + SIGSTOP/SIGCONT {info['throttle']} ms run:stop" if info.get("throttle") else "")
    a1.set_title(f"stress phase (shaded): {how}", fontsize=9)
    fig.suptitle(f"Experiment 4: health score under CPU stress aimed at {info['stressed']}")
    fig.tight_layout(rect=(0, 0.02, 1, 0.96))
    save(fig, img, name, d)


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in ("exp1", "exp2", "exp3", "exp4"):
        sys.exit(__doc__)
    args = sys.argv[2:]
    globals()[sys.argv[1]](*args)
