#!/usr/bin/env python3
"""Tables (printed as Markdown) and CSV files from the experiments' raw results.

    analyze.py exp1 DIR   # vigil-sim reports detect-*.json, fp-*.json
    analyze.py exp2 DIR   # vigil-sim reports join-*.json
    analyze.py exp3 DIR   # vigil-sim reports partition-*.json and lab.log (MEASURED: lines)
    analyze.py exp4 DIR   # samples.csv and routes.csv written by exp4_driver.py

Only the standard library: the tables must print even where matplotlib is missing.
"""

import csv
import glob
import json
import os
import re
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(h)) for h in header) + " |")
    return "\n".join(out)


def write_csv(path, rows, header):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def meta(d):
    p = os.path.join(d, "meta.json")
    if os.path.exists(p):
        m = load(p)
        return f"({m['command']}, {m['date_utc']} UTC, commit {m['commit']})"
    return ""


def split_name(path, prefix):
    """detect-quiet-phi8-s1.json -> ['quiet', 'phi8', 's1']"""
    base = os.path.basename(path)[len(prefix):-len(".json")]
    return base.split("-")


SETTING_ORDER = ["phi6", "phi8", "phi10", "phi12", "timeout2s", "timeout10s", "timeout30s"]


def setting_key(s):
    return SETTING_ORDER.index(s) if s in SETTING_ORDER else 99


def exp1(d):
    rows = []
    groups = {}
    for p in sorted(glob.glob(os.path.join(d, "detect-*.json"))):
        r = load(p)
        parts = split_name(p, "detect-")
        net, setting = parts[0], "-".join(parts[1:-1])
        groups.setdefault((net, setting), []).append(r)
    for (net, setting), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "quiet", setting_key(kv[0][1]))):
        det = [r["detection_s"] for r in rs]
        p50 = [x["all_failed_p50"] for x in det if x["all_failed_p50"] is not None]
        sus = [x["first_suspect_p50"] for x in det if x["first_suspect_p50"] is not None]
        mx = [x["all_failed_max"] for x in det if x["all_failed_max"] is not None]
        rows.append({
            "network": net,
            "setting": setting,
            "phi": rs[0]["config"]["phi"],
            "timeout_s": rs[0]["config"]["failure_timeout_ms"] / 1000,
            "runs": len(rs),
            "crashes": sum(x["samples"] for x in det),
            "first_suspect_p50_s": statistics.median(sus) if sus else None,
            "all_failed_p50_s": statistics.median(p50) if p50 else None,
            "all_failed_p50_range_s": f"{min(p50):.2f}-{max(p50):.2f}" if p50 else None,
            "all_failed_max_s": max(mx) if mx else None,
            "false_positives": sum(r["false_positives"] for r in rs),
            "violations": sum(1 for r in rs if r.get("violation")),
            "seeds": ",".join(str(r["seed"]) for r in rs),
        })
    h = ["network", "setting", "phi", "timeout_s", "runs", "crashes", "first_suspect_p50_s",
         "all_failed_p50_s", "all_failed_p50_range_s", "all_failed_max_s", "false_positives",
         "violations", "seeds"]
    write_csv(os.path.join(d, "detection.csv"), rows, h)
    print(f"\nExperiment 1a: detection, {rs[0]['nodes']} nodes {meta(d)}\n")
    print(table(rows, h))

    rows = []
    for p in sorted(glob.glob(os.path.join(d, "fp-*.json")),
                    key=lambda p: (split_name(p, "fp-")[0], setting_key("-".join(split_name(p, "fp-")[2:-1])))):
        r = load(p)
        parts = split_name(p, "fp-")
        noise, setting = "-".join(parts[:2]), "-".join(parts[2:-1])
        hours = r["simulated_s"] / 3600
        ev = r["events"]
        rows.append({
            "noise": noise,
            "jitter_ms": r["config"]["jitter_ms"],
            "loss": r["config"]["loss"],
            "setting": setting,
            "phi": r["config"]["phi"],
            "timeout_s": r["config"]["failure_timeout_ms"] / 1000,
            "simulated_s": r["simulated_s"],
            "false_positives": r["false_positives"],
            "suspect_marks": ev.get("member_suspected", 0),
            "suspect_marks_per_node_hour": round(ev.get("member_suspected", 0) / r["nodes"] / hours, 2) if hours else None,
            "false_failed_members": round(r["false_positives"] / max(1, r["nodes"] - 1), 1),
            "refutations": ev.get("member_refuted", 0),
            "all_alive_at_end": r["outcome"].get("all_see_all_alive_at_end"),
            "bytes_per_node_s": r["bytes_per_node_per_s"]["mean"],
            "violation": r.get("violation") or "",
            "seed": r["seed"],
        })
    h = ["noise", "jitter_ms", "loss", "setting", "phi", "timeout_s", "simulated_s", "false_positives",
         "false_failed_members", "suspect_marks", "suspect_marks_per_node_hour", "refutations", "all_alive_at_end",
         "bytes_per_node_s", "violation", "seed"]
    write_csv(os.path.join(d, "false_positives.csv"), rows, h)
    print(f"\nExperiment 1b: false positives under jitter and loss {meta(d)}")
    print("(false_positives and suspect_marks count MemberFailed / MemberSuspected events at every node;"
          " false_failed_members = false_positives / (nodes - 1), about how many members were wrongly convicted)\n")
    print(table(rows, h))


def exp2(d):
    rows = []
    for p in glob.glob(os.path.join(d, "join-*.json")):
        r = load(p)
        o = r["outcome"]
        reach = o.get("reach_rounds", {})
        rows.append({
            "nodes": r["nodes"],
            "fanout": r["config"]["fanout"],
            "seed": r["seed"],
            "convergence_s": r["convergence_s"],
            "spread_p50_s": r["spread_s_p50"],
            "spread_p99_s": r["spread_s_p99"],
            "reach_rounds_p50": reach.get("p50"),
            "reach_rounds_p99": reach.get("p99"),
            "reach_rounds_max": reach.get("max"),
            "cold_start_kb_per_node": o["cold_start_bytes_per_node"] / 1000 if "cold_start_bytes_per_node" in o else None,
            "changes_bytes_per_node_s": o.get("changes_bytes_per_node_per_s"),
            "steady_bytes_per_node_s": r["bytes_per_node_per_s"]["mean"],
            "max_datagram_b": r["max_message_bytes"],
            "false_positives": r["false_positives"],
            "simulated_s": r["simulated_s"],
            "wall_s": r["wall_s"],
            "violation": r.get("violation") or "",
        })
    rows.sort(key=lambda x: (x["nodes"], x["fanout"], x["seed"]))
    h = ["nodes", "fanout", "seed", "convergence_s", "spread_p50_s", "spread_p99_s", "reach_rounds_p50",
         "reach_rounds_p99", "reach_rounds_max", "cold_start_kb_per_node", "changes_bytes_per_node_s",
         "steady_bytes_per_node_s", "max_datagram_b", "false_positives", "simulated_s", "wall_s", "violation"]
    write_csv(os.path.join(d, "fanout.csv"), rows, h)
    print(f"\nExperiment 2: gossip fanout {meta(d)}\n")
    print(table(rows, h))


MEASURED = re.compile(r"MEASURED:\s*(.*)")
DUR = r"([0-9.]+(?:ns|µs|us|ms|s))"
SPLIT = re.compile(
    r"minority fenced.*?after " + DUR + r"; majority marks both FAILED after " + DUR +
    r"; two quorum leaders seen (.*?); heal -> one view of 5 HEALTHY, leader (.*?): " + DUR)


def secs(text):
    m = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", text)
    v, unit = float(m.group(1)), m.group(2)
    return round(v * {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit], 3)


def exp3(d):
    rows = []
    for p in glob.glob(os.path.join(d, "partition-*.json")):
        r = load(p)
        o = r["outcome"]
        rows.append({
            "nodes": r["nodes"],
            "minority": o.get("minority"),
            "majority": o.get("majority"),
            "seed": r["seed"],
            "minority_lost_quorum_s": o.get("minority_lost_quorum_s"),
            "majority_failed_minority_s": o.get("majority_failed_minority_s"),
            "minority_quorum_holders_at_heal": o.get("minority_quorum_holders_at_heal"),
            "majority_quorum_holders_at_heal": o.get("majority_quorum_holders_at_heal"),
            "majority_leaders": ",".join(o.get("majority_leaders_before_heal", [])),
            "heal_convergence_s": o.get("heal_convergence_s"),
            "leaders_after_heal": ",".join(o.get("leaders_after_heal", [])),
            "false_positives": r["false_positives"],
            "violation": r.get("violation") or "",
            "timeline": "timeline" in o,
        })
    rows.sort(key=lambda x: (x["nodes"], x["seed"], x["timeline"]))
    h = ["nodes", "minority", "majority", "seed", "minority_lost_quorum_s", "majority_failed_minority_s",
         "minority_quorum_holders_at_heal", "majority_quorum_holders_at_heal", "majority_leaders",
         "heal_convergence_s", "leaders_after_heal", "false_positives", "violation"]
    write_csv(os.path.join(d, "partition.csv"), [r for r in rows if not r["timeline"]], h)
    print(f"\nExperiment 3a: split brain in the simulator {meta(d)}\n")
    print(table([r for r in rows if not r["timeline"]], h))
    lab = os.path.join(d, "lab.log")
    if os.path.exists(lab):
        lines = [m.group(1).strip() for m in map(MEASURED.search, open(lab, errors="replace")) if m]
        with open(os.path.join(d, "lab_measured.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        labrows = []
        for line in lines:
            m = SPLIT.search(line)
            if not m:
                continue
            labrows.append({
                "run": len(labrows) + 1,
                "minority_fenced_s": secs(m.group(1)),
                "majority_failed_minority_s": secs(m.group(2)),
                "two_quorum_leaders": m.group(3),
                "heal_s": secs(m.group(5)),
                "leader_after_heal": m.group(4),
            })
        h = ["run", "minority_fenced_s", "majority_failed_minority_s", "two_quorum_leaders", "heal_s",
             "leader_after_heal"]
        write_csv(os.path.join(d, "lab.csv"), labrows, h)
        print("\nExperiment 3b: split brain {1,2}|{3,4,5} on real processes (netns lab)\n")
        print(table(labrows, h))
        status = [l for l in open(lab, errors="replace") if l.startswith("test ") or "SKIPPED" in l]
        for line in status:
            print("  " + line.rstrip())


def exp4_phase(samples, routes, a, b, stressed, other):
    """The summary.json figures of one phase [a, b) (see exp4.sh)."""
    ss = [s for s in samples if a <= float(s["t"]) < b]
    rr = [x for x in routes if a <= float(x["t"]) < b]
    ok = [x for x in rr if x["status"] == "202"]
    late = [x for x in ok if float(x["t"]) >= a + 5]

    def share(xs):
        return round(sum(1 for x in xs if x["routed_to"] == stressed) / len(xs), 3) if xs else None

    def scores(p):
        return [float(s[f"{p}_score"]) for s in ss if s.get(f"{p}_score")]

    lat = sorted(float(x["latency_ms"]) for x in ok if x.get("latency_ms"))
    failed = set()
    for s in ss:
        failed.update(x for x in (s.get("failed") or "").split() if x)
    sb, sa = scores(stressed), scores(other)
    return {
        "share_b": share(ok),
        "share_b_after_5s": share(late),
        "score_b_min": min(sb) if sb else None,
        "score_b_mean": round(statistics.mean(sb), 1) if sb else None,
        "score_a_min": min(sa) if sa else None,
        "score_a_mean": round(statistics.mean(sa), 1) if sa else None,
        "write_p50_ms": lat[len(lat) // 2] if lat else None,
        "write_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        "writes": len(ok),
        "failed_writes": len(rr) - len(ok),
        "false_failed": len(failed),
    }


def exp4(d):
    samples = list(csv.DictReader(open(os.path.join(d, "samples.csv"))))
    routes = list(csv.DictReader(open(os.path.join(d, "routes.csv"))))
    info = load(os.path.join(d, "run.json"))
    phases = info["phases"]  # [[name, start_s, end_s], ...]
    producers = info["producers"]
    stressed = info["stressed"]
    other = next(p for p in producers if p != stressed)
    rows = []
    summary = {}
    for name, a, b in phases:
        P = exp4_phase(samples, routes, a, b, stressed, other)
        summary[name] = P
        row = {"phase": name, "from_s": a, "to_s": b}
        ss = [s for s in samples if a <= float(s["t"]) < b]
        for p in producers:
            sc = [float(s[f"{p}_score"]) for s in ss if s.get(f"{p}_score")]
            row[f"{p} score (mean, min)"] = f"{statistics.mean(sc):.0f}, {min(sc):.0f}" if sc else "-"
            ph = [float(s[f"{p}_phi"]) for s in ss if s.get(f"{p}_phi")]
            row[f"{p} phi max"] = f"{max(ph):.2f}" if ph else "-"
            st = [s[f"{p}_status"] for s in ss if s.get(f"{p}_status")]
            row[f"{p} not HEALTHY"] = f"{sum(1 for x in st if x != 'HEALTHY')}/{len(st)}"
            for k in ("pressure", "lag", "latency"):
                v = [float(s[f"{p}_{k}"]) for s in ss if s.get(f"{p}_{k}")]
                row[f"{p} {k} max"] = f"{max(v):.0f}" if v else "-"
            ej = [int(s[f"{p}_ejections"]) for s in ss if s.get(f"{p}_ejections")]
            row[f"{p} ejections"] = (max(ej) - min(ej)) if ej else "-"
        rr = [x for x in routes if a <= float(x["t"]) < b]
        ok = [x for x in rr if x["status"] == "202"]
        for p in producers:
            n = sum(1 for x in ok if x["routed_to"] == p)
            row[f"to {p}"] = f"{n} ({100 * n / len(ok):.0f} %)" if ok else "-"
        row["requests"] = len(rr)
        row["errors"] = len(rr) - len(ok)
        row[f"to {stressed} from +5 s"] = f"{100 * P['share_b_after_5s']:.0f} %" if P["share_b_after_5s"] is not None else "-"
        lat = sorted(float(x["latency_ms"]) for x in ok if x.get("latency_ms"))
        row["write p50/p99 ms"] = f"{lat[len(lat) // 2]:.0f} / {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.0f}" if lat else "-"
        row["false FAILED"] = P["false_failed"]
        rows.append(row)
    h = ["phase", "from_s", "to_s"]
    for p in producers:
        h += [f"{p} score (mean, min)", f"{p} phi max", f"{p} not HEALTHY", f"{p} pressure max", f"{p} lag max",
              f"{p} latency max", f"{p} ejections"]
    h += [f"to {p}" for p in producers] + [f"to {stressed} from +5 s", "requests", "errors", "write p50/p99 ms",
                                            "false FAILED"]
    write_csv(os.path.join(d, "phases.csv"), rows, h)
    # One summary for every mode: exp4/summary.json, {"modes": {mode: {phase: P}}}.
    mode = os.path.basename(os.path.normpath(d))
    path = os.path.join(os.path.dirname(os.path.normpath(d)), "summary.json")
    all_modes = load(path) if os.path.exists(path) else {"modes": {}}
    all_modes["modes"][mode] = summary
    with open(path, "w") as f:
        json.dump(all_modes, f, indent=1, sort_keys=True)
    how = info["stress_cmd"] + (f", plus SIGSTOP/SIGCONT {info['throttle']} ms (run:stop)" if info.get("throttle") else "")
    print(f"\nExperiment 4: health score under CPU stress on {stressed}: {how} {meta(d)}\n")
    print(table(rows, h))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("exp1", "exp2", "exp3", "exp4"):
        sys.exit(__doc__)
    globals()[sys.argv[1]](sys.argv[2])
