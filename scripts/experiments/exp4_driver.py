#!/usr/bin/env python3
"""Experiment 4 driver: five `vigil node` processes on loopback (coordinator, gateway,
producer-a, producer-b, consumer), steady writes through the gateway, CPU stress during the
middle phase, and a sample of the gateway's view every 0.5 s.

    exp4_driver.py --vigil BIN --out DIR --stress-cmd "stress-ng --cpu 2 --timeout 40s" [...]

Writes DIR/samples.csv (t, each producer's score, phi, status and signals as the gateway
sees them, the gateway's routing weight and ejection of each, and every member seen FAILED),
DIR/routes.csv (t, HTTP status, X-Routed-To of every write) and DIR/run.json
(phases, producers, the commands). Only the standard library.
"""

import argparse
import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

PRODUCERS = ["producer-a", "producer-b"]
MEMBERS = [  # id, role
    ("coordinator", "coordinator"),
    ("gateway", "gateway"),
    ("producer-a", "producer"),
    ("producer-b", "producer"),
    ("consumer", "consumer"),
]


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get_json(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def post(url, body, timeout=5.0):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("x-routed-to", ""), ""
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")[:300]
        return e.code, e.headers.get("x-routed-to", "") if e.headers else "", body
    except (urllib.error.URLError, OSError) as e:
        return 0, "", str(e)


def wait_until(what, deadline_s, cond):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if cond():
                return
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out after {deadline_s} s waiting for: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stress-cmd", required=True, help="the CPU stress command (run during the stress phase)")
    ap.add_argument("--stressed", default="producer-b", help="member the stress is aimed at")
    ap.add_argument("--pin-stressed", default="", help="CPU list for the stressed member (taskset), e.g. 1")
    ap.add_argument("--pin-others", default="", help="CPU list for every other member, e.g. 0")
    ap.add_argument("--stressed-policy", default="other", choices=["other", "batch", "idle"],
                    help="scheduling policy of the stressed member (chrt)")
    ap.add_argument("--throttle", default="",
                    help="RUN_MS:STOP_MS: during the stress phase, also freeze the stressed member "
                         "(SIGSTOP) for STOP_MS out of every RUN_MS + STOP_MS: a member that gets "
                         "CPU only in rare bursts")
    ap.add_argument("--baseline", type=float, default=20.0)
    ap.add_argument("--stress", type=float, default=40.0)
    ap.add_argument("--recovery", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=20.0, help="writes per second through the gateway")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.pin_others:
        # The writer and sampler are the clients: they run beside the unstressed members in
        # every phase. Left free, they used the stressed member's CPU while it was idle (the
        # baseline) and lost it to the hog under stress, so the client's own scheduling delays
        # (up to a second behind the real-time hog) counted as the cluster's write latency.
        cpus = set()
        for part in args.pin_others.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        os.sched_setaffinity(0, cpus)

    work = tempfile.mkdtemp(prefix="vigil-exp4-")
    ports = {m: (free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)) for m, _ in MEMBERS}
    seeds = f"127.0.0.1:{ports['coordinator'][1]}"
    procs = {}
    commands = {}
    # A real cluster's secrets, from the OS's random source: members refuse to start without.
    env = dict(os.environ)
    env["VIGIL_SECURITY_GOSSIP_KEYS"] = subprocess.check_output([args.vigil, "keys", "generate"], text=True).strip()
    env["VIGIL_HTTP_ADMIN_TOKEN"] = subprocess.check_output([args.vigil, "keys", "token"], text=True).strip()
    for member, role in MEMBERS:
        http, gossip = ports[member]
        argv = [args.vigil, "node", "--id", member, "--role", role, "--http", f"127.0.0.1:{http}",
                "--gossip", f"127.0.0.1:{gossip}", "--cluster", "exp4", "--log-level", "warn",
                "--set", f"services.consumer.sqlite-path={work}/{member}.sqlite"]
        if member != "coordinator":
            argv += ["--seeds", seeds]
        prefix = []
        if member == args.stressed:
            if args.pin_stressed:
                prefix += ["taskset", "-c", args.pin_stressed]
            if args.stressed_policy != "other":
                prefix += ["chrt", f"--{args.stressed_policy}", "0"]
        elif args.pin_others:
            prefix += ["taskset", "-c", args.pin_others]
        commands[member] = " ".join(shlex.quote(x) for x in prefix + argv)
        log = open(os.path.join(work, f"{member}.log"), "w")
        procs[member] = subprocess.Popen(prefix + argv, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env)

    gw = f"http://127.0.0.1:{ports['gateway'][0]}"
    stress = None
    try:
        def converged():
            s = get_json(f"{gw}/cluster/status")
            return s["hasQuorum"] and s["healthyNodes"] == len(MEMBERS)
        wait_until("5 HEALTHY members with quorum at the gateway", 60, converged)

        def all_hold_quorum():
            # a producer refuses writes until it holds quorum itself (its lease can come a
            # moment after the gateway's): start measuring once every member does
            return all(get_json(f"http://127.0.0.1:{ports[m][0]}/cluster/status")["hasQuorum"] for m, _ in MEMBERS)
        wait_until("every member holds quorum", 30, all_hold_quorum)
        print(f"cluster up: gateway {gw}; logs in {work}", file=sys.stderr)

        t0 = time.monotonic()
        total = args.baseline + args.stress + args.recovery
        phases = [["baseline", 0.0, args.baseline],
                  ["stress", args.baseline, args.baseline + args.stress],
                  ["recovery", args.baseline + args.stress, total]]
        samples, routes = [], []
        stop = threading.Event()

        def sampler():
            nxt = t0
            while not stop.is_set():
                t = time.monotonic() - t0
                row = {"t": round(t, 2)}
                try:
                    s = get_json(f"{gw}/cluster/status")
                    # the gateway's routing state is in its /api/cluster/status (cached 1 s)
                    s["routing"] = get_json(f"{gw}/api/cluster/status").get("routing")
                    row["has_quorum"] = s["hasQuorum"]
                    row["failed"] = " ".join(sorted(k for k, v in s["membership"].items() if v["status"] == "FAILED"))
                    for m in PRODUCERS:
                        v = s["membership"].get(m)
                        if v:
                            row[f"{m}_score"] = v["healthScore"]
                            row[f"{m}_phi"] = v["phiScore"]
                            row[f"{m}_status"] = v["status"]
                            row[f"{m}_cpu"] = v["signals"]["cpuPct"]
                        ld = s.get("load", {}).get(m)
                        if ld:
                            row[f"{m}_pressure"] = ld["pressurePct"]
                            row[f"{m}_lag"] = ld["lagMs"]
                            row[f"{m}_latency"] = ld["latencyMs"]
                        rt = (s.get("routing") or {}).get(m)
                        if rt:
                            row[f"{m}_weight"] = round(rt["weight"], 3)
                            row[f"{m}_ejected"] = int(rt["ejected"])
                            row[f"{m}_ejections"] = rt["ejections"]
                            row[f"{m}_ewma"] = round(rt["latencyEwmaMs"], 1)
                except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
                    row["error"] = str(e)
                samples.append(row)
                nxt += 0.5
                stop.wait(max(0.0, nxt - time.monotonic()))

        def writer():
            k = 0
            nxt = t0
            while not stop.is_set():
                k += 1
                t = time.monotonic() - t0
                code, routed, why = post(f"{gw}/api/logs", [{"service": "exp4", "level": "INFO", "message": f"event {k}"}])
                took = time.monotonic() - t0 - t
                routes.append({"t": round(t, 3), "status": code, "routed_to": routed, "latency_ms": round(took * 1000, 1), "error": why})
                nxt += 1.0 / args.rate
                stop.wait(max(0.0, nxt - time.monotonic()))

        threads = [threading.Thread(target=sampler), threading.Thread(target=writer)]
        for th in threads:
            th.start()
        stop.wait(args.baseline)
        print(f"stress: {args.stress_cmd}", file=sys.stderr)
        # The whole stress command (stress-ng's parent too, real-time in `starved`, not only
        # its workers) runs on the stressed member's CPUs, as a container's hog would.
        pin = ["taskset", "-c", args.pin_stressed] if args.pin_stressed else []
        stress = subprocess.Popen(pin + shlex.split(args.stress_cmd), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        throttle_stop = threading.Event()
        throttler = None
        if args.throttle:
            run_ms, stop_ms = (float(x) / 1000 for x in args.throttle.split(":"))
            victim = procs[args.stressed].pid

            def throttle():
                while not throttle_stop.is_set():
                    os.kill(victim, signal.SIGSTOP)
                    throttle_stop.wait(stop_ms)
                    os.kill(victim, signal.SIGCONT)
                    throttle_stop.wait(run_ms)
                os.kill(victim, signal.SIGCONT)

            throttler = threading.Thread(target=throttle)
            throttler.start()
        stop.wait(args.stress)
        throttle_stop.set()
        if throttler is not None:
            throttler.join()
        if stress.poll() is None:
            os.killpg(stress.pid, signal.SIGTERM)
        stress.wait(timeout=10)
        stop.wait(args.recovery)
        stop.set()
        for th in threads:
            th.join()
    finally:
        if stress is not None and stress.poll() is None:
            os.killpg(stress.pid, signal.SIGKILL)
        if procs.get(args.stressed) and procs[args.stressed].poll() is None:
            os.kill(procs[args.stressed].pid, signal.SIGCONT)
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    kinds = ("score", "phi", "status", "cpu", "pressure", "lag", "latency", "weight", "ejected", "ejections", "ewma")
    cols = ["t", "has_quorum", "failed"] + [f"{m}_{k}" for m in PRODUCERS for k in kinds] + ["error"]
    with open(os.path.join(args.out, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(samples)
    with open(os.path.join(args.out, "routes.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["t", "status", "routed_to", "latency_ms", "error"])
        w.writeheader()
        w.writerows(routes)
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump({"phases": phases, "producers": PRODUCERS, "stressed": args.stressed,
                   "stress_cmd": args.stress_cmd, "throttle": args.throttle, "members": commands, "rate": args.rate,
                   "driver_cpus": sorted(os.sched_getaffinity(0)), "logs": work}, f, indent=1)


if __name__ == "__main__":
    main()
