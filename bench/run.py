#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The restore benchmark (bench/README.md).

In one run on this machine: generate a guest memory image and its trained
trace (tier-gen), import it, place it under every policy, replay the trace
under each (tierctl replay --json), measure the physical floor (floor), and
report each policy next to the others and tiered next to its floor. Targets
are printed PASS/MISS; only a failed command or a page that came back wrong
makes the exit status non-zero (timings never do: the machine is shared).
"""

import argparse
import datetime
import json
import random
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

POLICIES = ["tiered", "vanilla", "reap", "faasnap", "aquifer", "eager"]
TCP_POLICIES = ["tiered", "aquifer"]
PAGE = 4096
MIB = 1 << 20
SNAP = "bench"
TIMEOUT = 900


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, timeout=TIMEOUT, capture=True):
    """Runs @cmd; returns (stdout, seconds). Raises BenchError on failure."""
    log("+ " + " ".join(cmd))
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("%s: timed out after %d s" % (cmd[0], timeout))
    except OSError as e:
        raise BenchError("%s: %s" % (cmd[0], e))
    dt = time.monotonic() - t
    if p.returncode != 0:
        raise BenchError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                               p.stderr.strip()[-2000:]))
    return (p.stdout or ""), dt


def last_json(text, what):
    """The last line of @text that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    try:
        return json.loads(text)
    except ValueError:
        raise BenchError("%s printed no JSON object: %r" % (what, text[-500:]))


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMGT]?)(i?B)?", s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError("bad size %r" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30,
                               "T": 40}[m.group(2).upper()]


def fmt_size(n):
    for unit, sh in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << sh and n % (1 << sh) == 0:
            return "%d%s" % (n >> sh, unit)
    return str(n)


def find_tools(args):
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = args.build or os.environ.get("TIER_BUILD")
    if not build:
        tc = os.environ.get("TIERCTL")
        build = (os.path.dirname(os.path.dirname(tc)) if tc
                 else os.path.join(src, "build"))
    tools = {
        "tierctl": os.environ.get("TIERCTL") or os.path.join(build, "tierctl", "tierctl"),
        "gen": os.path.join(build, "bench", "tier-gen"),
        "floor": os.path.join(build, "bench", "floor"),
    }
    for name, path in tools.items():
        if not os.access(path, os.X_OK):
            raise BenchError("%s not found at %s (build with ninja -C %s, or "
                             "pass --build)" % (name, path, build))
    return tools


def g(d, *keys, default=0):
    """d[k1][k2]... or @default."""
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def faults_total(r):
    f = r.get("faults") or {}
    return sum(v for v in f.values() if isinstance(v, (int, float)))


class Bench:
    def __init__(self, args, tools, tmp):
        self.a = args
        self.t = tools
        self.tmp = tmp
        self.store = os.path.join(tmp, "store")
        self.image = os.path.join(tmp, "image")
        self.trace = os.path.join(tmp, "trained.trace")
        self.trace2 = os.path.join(tmp, "second.trace")
        # Inside the temporary directory, not the library's shared default.
        self.cxl = "cxl=dir:" + os.path.join(tmp, "cxl")
        self.result = {
            "date": datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "machine": machine_notes(),
            "size": args.size,
            "seed": args.seed,
            "loadavg_start": loadavg(),
            "tree": tree_version(),
            "runs": {},
        }

    def tierctl(self, cmd, *argv, timeout=TIMEOUT):
        """tierctl CMD --store STORE ARGV... ("trace import" is one CMD)."""
        return run([self.t["tierctl"]] + cmd.split() + ["--store", self.store]
                   + list(argv), timeout=timeout)

    def prepare(self):
        a = self.a
        out, dt = run([self.t["gen"], "--size", fmt_size(a.size),
                       "--zero", str(a.zero), "--ro", str(a.ro),
                       "--rw", str(a.rw), "--seed", str(a.seed),
                       "--image", self.image, "--trace", self.trace,
                       "--trace2", self.trace2, "--diff", str(a.diff),
                       "--cold-touch", str(a.cold_touch),
                       "--flip", str(a.flip)])
        self.gen = last_json(out, "tier-gen")
        self.gen["seconds"] = round(dt, 3)
        self.result["gen"] = self.gen
        _, dt = self.tierctl("import", "--quiet", SNAP, self.image)
        self.result["import_s"] = round(dt, 3)
        # The store keeps its own sparse copy: the source image can go now.
        if not a.keep:
            os.unlink(self.image)
        self.tierctl("trace import", "--name", "trained", SNAP, self.trace)
        self.result["place_s"] = {}
        for p in a.policies:
            _, dt = self.tierctl("place", "--policy", p, "--trace", "trained",
                                 "--cxl", self.cxl, *self.cost_args(), SNAP)
            self.result["place_s"][p] = round(dt, 3)
        try:
            out, _ = self.tierctl("show", "--json", SNAP)
            self.result["plans"] = last_json(out, "tierctl show")
        except BenchError as e:
            log("run.py: no plan summary: %s" % e)

    def cost_args(self):
        """What the floor measured a mapping and a served fault to cost,
        for place's choice of clusters (doc/placement.md)."""
        fl = self.result.get("floor") or {}
        m = fl.get("map_1page_populate_ns_per_mapping")
        f = fl.get("missing_fault_p50_ns")
        z = fl.get("anon_populate_write_ns_per_page") or 0
        if not m or not f or f <= z:
            return []
        return ["--map-ns", str(int(m)), "--fault-ns", str(int(f - z))]

    def floor(self):
        out, _ = run([self.t["floor"], "--reps", str(self.a.floor_reps),
                      "--mib", str(self.a.floor_mib), "--dir", self.tmp])
        self.result["floor"] = last_json(out, "floor")

    def replay(self, policy, instances=1, pool=None, trace_file=None):
        argv = ["replay", "--json", "--policy", policy]
        argv += (["--trace-file", trace_file] if trace_file
                 else ["--trace", "trained"])
        if instances > 1:
            argv += ["--instances", str(instances)]
        if pool:
            argv += ["--pool", pool]
        out, dt = self.tierctl(*(argv + [SNAP]))  # argv[0] is "replay"
        r = last_json(out, "tierctl replay")
        r["wall_s"] = round(dt, 3)
        return r

    def run_set(self, name, policies, instances=1, pool=None,
                trace_file=None, what="trained trace"):
        """Each policy --reps times, interleaved so noise hits them alike;
        keeps the sample of median setup time, with the medians of setup
        and replay time and every sample."""
        samples = {p: [] for p in policies}
        for _ in range(self.a.reps):
            for p in policies:
                samples[p].append(self.replay(p, instances, pool, trace_file))
        res = {}
        for p in policies:
            s = sorted(samples[p], key=lambda r: g(r, "setup_ms"))
            r = dict(s[(len(s) - 1) // 2])
            for k in ("setup_ms", "replay_ms", "setup_ms_max",
                      "replay_ms_max", "verify_ms"):
                v = sorted(g(x, k) for x in s)
                r[k] = v[(len(v) - 1) // 2]
            r["setup_ms_samples"] = [g(x, "setup_ms") for x in samples[p]]
            r["replay_ms_samples"] = [g(x, "replay_ms") for x in samples[p]]
            res[p] = r
        self.result["runs"][name] = {"instances": instances, "pool": pool,
                                     "trace": what, "policies": res}
        return res

    def cold_trace(self, pct):
        """The trained trace with pct % more touches, reads of non-zero
        pages it never touched (cold: served by fault), spread over it."""
        path = os.path.join(self.tmp, "cold%g.trace" % pct)
        ents = []
        for line in open(self.trace):
            f = line.split()
            if f and not f[0].startswith("#"):
                ents.append((int(f[0], 0) // PAGE, f[1] if len(f) > 1 else "r"))
        seen = set(p for p, _ in ents)
        img = os.path.join(self.store, "snapshots", SNAP, "image")
        data = []
        fd = os.open(img, os.O_RDONLY)
        try:
            off, end = 0, os.fstat(fd).st_size
            while off < end:
                try:
                    d = os.lseek(fd, off, os.SEEK_DATA)
                except OSError:
                    break
                h = os.lseek(fd, d, os.SEEK_HOLE)
                data.extend(range(d // PAGE, h // PAGE))
                off = h
        finally:
            os.close(fd)
        cand = [p for p in data if p not in seen]
        rnd = random.Random(self.a.seed + 10)
        extra = rnd.sample(cand, min(len(cand), int(len(ents) * pct / 100)))
        out = list(ents)
        for i, p in enumerate(extra):
            out.insert(rnd.randrange(len(out) + 1), (p, "r"))
        with open(path, "w") as f:
            f.write("# trained trace + %g%% cold reads\n" % pct)
            for p, k in out:
                f.write("0x%x %s\n" % (p * PAGE, k))
        return path, len(out), len(extra)

    def faults(self):
        """Served-fault latency against the floor's MISSING fault: tiered
        with the second run's trace and with 10 % cold touches, the handler
        spinning or not, interleaved."""
        cold, n, ncold = self.cold_trace(10)
        traces = [("second", self.trace2), ("cold10", cold)]
        spins = [0, self.a.spin_us]
        samples = {(t, sp): [] for t, _ in traces for sp in spins}
        for _ in range(self.a.reps):
            for t, path in traces:
                for sp in spins:
                    out, _ = self.tierctl("replay", "--json", "--latency",
                                          "--spin-us", str(sp), "--policy",
                                          "tiered", "--trace-file", path, SNAP)
                    samples[(t, sp)].append(last_json(out, "tierctl replay"))
        res = {}
        spaced = {}
        for t, _ in traces:
            # the floor's fault with this trace's spacing (the handler
            # asleep between faults as the restorer's is), measured now
            gaps = sorted(g(r, "fault_latency", "gap_p50_ns")
                          for r in samples[(t, 0)])
            gap = gaps[(len(gaps) - 1) // 2] if gaps else 0
            if gap:
                out, _ = run([self.t["floor"], "--only-lat", "--reps",
                              str(self.a.floor_reps), "--mib", "16",
                              "--miss-gap-us", "%.1f" % (gap / 1e3),
                              "--dir", self.tmp])
                fj = last_json(out, "floor")
                spaced[t] = {"gap_ns": gap,
                             "p50_ns": fj.get("missing_fault_spaced_p50_ns"),
                             "p99_ns": fj.get("missing_fault_spaced_p99_ns")}
        for (t, sp), rs in samples.items():
            lat = [r.get("fault_latency") or {} for r in rs]
            med = lambda k: sorted(g(x, k) for x in lat)[(len(lat) - 1) // 2]
            res["%s/spin%d" % (t, sp)] = {
                "trace": t, "spin_us": sp,
                "faults": med("n"), "p50_ns": med("p50_ns"),
                "p99_ns": med("p99_ns"), "max_ns": med("max_ns"),
                "mismatches": sum(g(r, "mismatches") for r in rs),
                "p50_samples": [g(x, "p50_ns") for x in lat],
            }
        self.result["faults"] = {"cold10_pages": n, "cold10_cold": ncold,
                                 "runs": res, "floor_spaced": spaced}

    def tcp(self):
        """The pool behind "tierctl pool serve" on loopback TCP."""
        d = os.path.join(self.tmp, "tcp-pool")
        os.makedirs(d, exist_ok=True)
        cmd = [self.t["tierctl"], "pool", "serve", "--no-auth", "--listen",
               "tcp://127.0.0.1:0", "--dir", d]
        log("+ " + " ".join(cmd) + " &")
        errpath = os.path.join(self.tmp, "pool-serve.err")
        with open(errpath, "w") as err:
            srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                   text=True)
        try:
            # Its first line says where it listens; wait for it, bounded.
            line = ""
            if select.select([srv.stdout], [], [], 30)[0]:
                line = srv.stdout.readline()
            m = re.search(r"listening on (tcp://[\w.:\[\]-]+)", line)
            if not m:
                with open(errpath) as err:
                    raise BenchError("pool serve did not say where it "
                                     "listens: %r %s" % (line, err.read()))
            uri = m.group(1)
            for p in TCP_POLICIES:
                if p in self.a.policies:
                    self.tierctl("place", "--policy", p, "--trace", "trained",
                                 "--cxl", self.cxl, "--pool", uri,
                                 *self.cost_args(), SNAP)
            self.run_set("tcp", [p for p in TCP_POLICIES
                                 if p in self.a.policies])
            self.result["runs"]["tcp"]["pool"] = uri
        finally:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()

    # ------------------------------------------------------------ report

    def analyse(self):
        """Floor, ratios and targets, from this run's numbers only."""
        res, gen, fl = self.result, self.gen, self.result.get("floor", {})
        base = res["runs"].get("local", {}).get("policies", {})
        tiered = base.get("tiered")
        checks = []
        an = {}
        touched = gen["trace_pages"]
        if tiered:
            pages = tiered.get("pages") or {}
            ro = g(pages, "ro", default=gen["ro_pages"])
            rw = g(pages, "rw", default=gen["rw_pages"])
            an["ro_pages"], an["rw_pages"] = ro, rw
            pr = fl.get("populate_read_ns_per_page")
            uc = fl.get("uffd_copy_batch512_ns_per_page")
            if pr and uc:
                floor_ms = (ro * pr + rw * uc) / 1e6
                an["floor_ms"] = round(floor_ms, 3)
                an["floor_formula"] = ("ro %.2f MiB x %.0f ns/page x 256 + "
                                       "rw %.2f MiB x %.0f ns/page x 256"
                                       % (ro / 256, pr, rw / 256, uc))
                setup = tiered.get("setup_ms")
                if setup is not None and floor_ms > 0:
                    an["setup_over_floor"] = round(setup / floor_ms, 2)
                    checks.append(("tiered setup <= 1.5x floor",
                                   "%.2f ms / %.2f ms = %.2fx" %
                                   (setup, an["floor_ms"], setup / floor_ms),
                                   setup <= 1.5 * floor_ms))
            # Not a target: what this plan's shape costs at the physical
            # rates (every mapping a populated one-page mmap, every rw page
            # its own UFFDIO_COPY), to tell plan shape from implementation.
            m1 = fl.get("map_1page_populate_ns_per_mapping")
            c1 = fl.get("uffd_copy_batch1_ns_per_page")
            maps = tiered.get("mappings")
            if m1 and c1 and maps and tiered.get("setup_ms") is not None:
                sf = (maps * m1 + rw * c1) / 1e6
                an["scattered_floor_ms"] = round(sf, 3)
                an["setup_over_scattered_floor"] = round(
                    tiered["setup_ms"] / sf, 2) if sf else None
                an["scattered_floor_formula"] = (
                    "%d mappings x %.0f ns + rw %d pages x %.0f ns"
                    % (maps, m1, rw, c1))
            lazy = faults_total(tiered)
            an["lazy_faults"] = lazy
            an["lazy_pct"] = round(100.0 * lazy / touched, 3) if touched else 0
            checks.append(("lazy faults <= 1% of touched pages",
                           "%d / %d = %.3f%%" % (lazy, touched, an["lazy_pct"]),
                           lazy <= 0.01 * touched))
            cold = g(tiered, "faults", "cold")
            rss = tiered.get("anon_rss_bytes")
            want = (rw + cold) * PAGE
            if rss is not None and want:
                an["anon_rss_over_rw_cold"] = round(rss / want, 3)
                checks.append(("anon RSS <= rw + touched cold + 5%",
                               "%.2f MiB vs %.2f MiB = %.3fx" %
                               (rss / MIB, want / MIB, rss / want),
                               rss <= 1.05 * want))
        n8 = res["runs"].get("multi", {}).get("policies", {})
        if "tiered" in n8 and "eager" in n8:
            t = n8["tiered"].get("anon_rss_bytes")
            e = n8["eager"].get("anon_rss_bytes")
            if t is not None and e:
                n = res["runs"]["multi"]["instances"]
                an["n8_anon_tiered_over_eager"] = round(t / e, 3)
                checks.append(("N=%d total anon <= 0.3x eager" % n,
                               "%.1f MiB / %.1f MiB = %.3fx" %
                               (t / MIB, e / MIB, t / e), t <= 0.3 * e))
        fr = res.get("faults", {}).get("runs", {})
        fs = res.get("faults", {}).get("floor_spaced", {})
        mf = fl.get("missing_fault_p50_ns")
        if fr and mf:
            an["fault_p50_over_floor"] = {}
            an["fault_p50_over_spaced_floor"] = {}
            for k, r in fr.items():
                sf = g(fs, r["trace"], "p50_ns")
                if r["p50_ns"]:
                    an["fault_p50_over_floor"][k] = round(r["p50_ns"] / mf, 2)
                    if sf:
                        an["fault_p50_over_spaced_floor"][k] = \
                            round(r["p50_ns"] / sf, 2)
                if r["mismatches"]:
                    checks.append(("faults %s pages verified" % k,
                                   "%d mismatches" % r["mismatches"], False))
            for t in ("second", "cold10"):
                best = min((r for r in fr.values() if r["trace"] == t and r["p50_ns"]),
                           key=lambda r: r["p50_ns"], default=None)
                # against the floor's fault at the trace's own spacing
                sf = g(fs, t, "p50_ns") or mf
                if best:
                    checks.append(("served fault p50 <= 1.3x floor (%s)" % t,
                                   "%.1f us / %.1f us = %.2fx (spin %d us; "
                                   "floor %s)" %
                                   (best["p50_ns"] / 1e3, sf / 1e3,
                                    best["p50_ns"] / sf, best["spin_us"],
                                    "%.0f us apart" % (g(fs, t, "gap_ns") / 1e3)
                                    if g(fs, t, "p50_ns") else "back to back"),
                                   best["p50_ns"] <= 1.3 * sf))
        for name, run_ in res["runs"].items():
            for p, r in run_["policies"].items():
                if g(r, "mismatches") or r.get("error"):
                    checks.append(("%s/%s pages verified" % (name, p),
                                   "%s mismatches" % g(r, "mismatches"), False))
        if tiered:
            rel = {}
            for p, r in base.items():
                rel[p] = {
                    "setup": round(g(r, "setup_ms") / max(1e-9, g(tiered, "setup_ms")), 2),
                    "total": round((g(r, "setup_ms") + g(r, "replay_ms")) /
                                   max(1e-9, g(tiered, "setup_ms") + g(tiered, "replay_ms")), 2),
                    "anon": round(g(r, "anon_rss_bytes") /
                                  max(1, g(tiered, "anon_rss_bytes")), 2),
                }
            an["vs_tiered"] = rel
        res["analysis"] = an
        res["checks"] = [{"target": c[0], "measured": c[1], "pass": c[2]}
                         for c in checks]

    def print_report(self, out=sys.stdout):
        res, gen = self.result, self.gen
        w = out.write
        w("\ntier benchmark  %s  (%s)\n" % (res["date"], res["machine"]))
        w("load average: %s at start, %s at end\n" % (
            res.get("loadavg_start", "?"), res.get("loadavg_end", "?")))
        w("command: %s  (tree %s)\n" % (res["command"], res.get("tree", "?")))
        w("image: %s, %d pages: zero %.1f%%, ro hot %d, rw hot %d "
          "(%d read first, %d written first), cold %d; trace %d pages in "
          "%d runs\n" % (fmt_size(res["size"]), gen["pages"],
                         100.0 * gen["zero_pages"] / gen["pages"],
                         gen["ro_pages"], gen["rw_pages"], gen["kind_rw"],
                         gen["kind_w"], gen["cold_pages"], gen["trace_pages"],
                         gen["trace_runs"]))
        fl = res.get("floor")
        if fl:
            w("floor (ns/page, median of %d): memcpy %s, UFFDIO_COPY x512 %s, "
              "MAP_PRIVATE+POPULATE_READ %s, MISSING fault %s, anon "
              "POPULATE_WRITE %s, UFFDIO_COPY x1 %s, one-page mmap+populate "
              "%s ns/mapping; two threads do %sx the work of one\n" % (
                  fl.get("reps"), fl.get("memcpy_ns_per_page"),
                  fl.get("uffd_copy_batch512_ns_per_page"),
                  fl.get("populate_read_ns_per_page"),
                  fl.get("missing_fault_ns_per_page"),
                  fl.get("anon_populate_write_ns_per_page"),
                  fl.get("uffd_copy_batch1_ns_per_page"),
                  fl.get("map_1page_populate_ns_per_mapping"),
                  fl.get("two_thread_speedup")))
        for name, run_ in res["runs"].items():
            n = run_["instances"]
            w("\n== %s: %s, %d instance%s, pool %s; median of %d\n" % (
                name, run_.get("trace", "trained trace"), n,
                "" if n == 1 else "s (times: mean,max; bytes and faults: total)",
                run_["pool"] or "(the plan's)", self.a.reps))
            hdr = ("policy", "setup_ms", "replay_ms", "total_ms",
                   "verify_ms", "f.zero",
                   "f.ro", "f.rw", "f.cold", "lazy%", "prefetch", "maps",
                   "minflt", "pool_MiB", "anon_MiB", "cxl_MiB", "verified",
                   "mism")
            rows = []
            for p, r in run_["policies"].items():
                lazy = faults_total(r)
                setup, rep = g(r, "setup_ms"), g(r, "replay_ms")
                if n > 1:
                    st = "%.2f,%.2f" % (setup, g(r, "setup_ms_max"))
                    rt = "%.2f,%.2f" % (rep, g(r, "replay_ms_max"))
                else:
                    st, rt = "%.2f" % setup, "%.2f" % rep
                rows.append((
                    p, st, rt, "%.2f" % (setup + rep),
                    "%.2f" % g(r, "verify_ms"),
                    str(g(r, "faults", "zero")), str(g(r, "faults", "ro")),
                    str(g(r, "faults", "rw")), str(g(r, "faults", "cold")),
                    "%.2f" % (100.0 * lazy / max(1, g(r, "trace_pages",
                                                      default=gen["trace_pages"]) * n)),
                    str(g(r, "prefetched_pages")), str(g(r, "mappings")),
                    str(g(r, "minflt")),
                    "%.1f" % (g(r, "pool_bytes") / MIB),
                    "%.1f" % (g(r, "anon_rss_bytes") / MIB),
                    "%.1f" % (g(r, "cxl_mapped_bytes") / MIB),
                    str(g(r, "verified_pages")), str(g(r, "mismatches"))))
            widths = [max(len(x[i]) for x in rows + [hdr])
                      for i in range(len(hdr))]
            for row in [hdr] + rows:
                w("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                            for i, c in enumerate(row)).rstrip() + "\n")
        local = res["runs"].get("local", {}).get("policies", {})
        if local:
            w("\nsetup breakdown (local run, instance 0):\n")
            hdr = ("policy", "map_ms", "prefetch_ms", "register_ms",
                   "other_ms", "mappings", "us/mapping", "prefetched",
                   "ns/prefetched")
            rows = []
            for p, r in local.items():
                i0 = (r.get("per_instance") or [r])[0]
                mp, pf, rg = (g(i0, "map_ms"), g(i0, "prefetch_ms"),
                              g(i0, "register_ms"))
                maps, pre = g(i0, "mappings"), g(i0, "prefetched_pages")
                rows.append((p, "%.2f" % mp, "%.2f" % pf, "%.2f" % rg,
                             "%.2f" % (g(i0, "setup_ms") - mp - pf - rg),
                             str(maps),
                             "%.2f" % (1000.0 * mp / maps) if maps else "-",
                             str(pre),
                             "%.0f" % (1e6 * pf / pre) if pre else "-"))
            widths = [max(len(x[i]) for x in rows + [hdr])
                      for i in range(len(hdr))]
            for row in [hdr] + rows:
                w("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                            for i, c in enumerate(row)).rstrip() + "\n")
        an = res.get("analysis", {})
        if "floor_ms" in an:
            w("\ntiered floor: %s = %.2f ms\n" % (an["floor_formula"],
                                                 an["floor_ms"]))
        if "scattered_floor_ms" in an:
            w("tiered with this plan's shape (not a target): %s = %.2f ms; "
              "setup / that = %.2fx\n" % (an["scattered_floor_formula"],
                                          an["scattered_floor_ms"],
                                          an["setup_over_scattered_floor"]))
        if "vs_tiered" in an:
            w("\neach policy / tiered (local run): setup, setup+replay, anon RSS\n")
            for p, v in an["vs_tiered"].items():
                w("  %-8s %6.2fx %6.2fx %6.2fx\n" % (p, v["setup"], v["total"],
                                                   v["anon"]))
        fr = res.get("faults", {}).get("runs", {})
        if fr:
            fl = res.get("floor", {})
            w("\nserved faults, tiered (median of %d replays; floor MISSING "
              "fault p50 %.1f us, p99 %.1f us):\n"
              % (self.a.reps, g(fl, "missing_fault_p50_ns") / 1e3,
                 g(fl, "missing_fault_p99_ns") / 1e3))
            fs = res.get("faults", {}).get("floor_spaced", {})
            for t, v in sorted(fs.items()):
                w("  floor with %s's spacing (faults %.1f us apart): p50 "
                  "%.1f us, p99 %.1f us\n" % (t, v["gap_ns"] / 1e3,
                                             (v["p50_ns"] or 0) / 1e3,
                                             (v["p99_ns"] or 0) / 1e3))
            w("  %-8s %7s %8s %9s %9s %9s %9s %9s\n" % ("trace", "spin us",
              "faults", "p50 us", "p99 us", "max us", "p50/floor",
              "/spaced"))
            for k, r in fr.items():
                w("  %-8s %7d %8d %9.1f %9.1f %9.1f %9s %9s\n" % (
                    r["trace"], r["spin_us"], r["faults"], r["p50_ns"] / 1e3,
                    r["p99_ns"] / 1e3, r["max_ns"] / 1e3,
                    "%.2fx" % an["fault_p50_over_floor"][k]
                    if k in an.get("fault_p50_over_floor", {}) else "-",
                    "%.2fx" % an["fault_p50_over_spaced_floor"][k]
                    if k in an.get("fault_p50_over_spaced_floor", {}) else "-"))
        w("\ntargets:\n")
        for c in res.get("checks", []):
            w("  %-4s %-40s %s\n" % ("PASS" if c["pass"] else "MISS",
                                     c["target"], c["measured"]))


def tree_version():
    """The source tree's commit, "+dirty" if it has changes."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", src, "rev-parse", "--short",
                               "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", src, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_notes():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.0f GiB" % (kb / (1 << 20))
    except (OSError, ValueError, IndexError):
        pass
    return "%s, %d cpus, %s, kernel %s" % (cpu or "?", os.cpu_count() or 0,
                                           mem, platform.release())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"),
                    help="image size, K/M/G suffix (default 1G)")
    ap.add_argument("--zero", type=float, default=82)
    ap.add_argument("--ro", type=float, default=5)
    ap.add_argument("--rw", type=float, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--instances", type=int, default=8,
                    help="instances of the N-instance run (0: skip it)")
    ap.add_argument("--policies", default=",".join(POLICIES),
                    help="comma-separated (default: all)")
    ap.add_argument("--diff", type=float, default=2,
                    help="%% of pages the second run's trace changes")
    ap.add_argument("--cold-touch", type=float, default=0,
                    help="extra cold pages the second run reads, %% of trace")
    ap.add_argument("--flip", type=float, default=0.5,
                    help="%% of read-only pages the second run writes")
    ap.add_argument("--no-second", action="store_true",
                    help="skip the replay of the second run's trace")
    ap.add_argument("--no-faults", action="store_true",
                    help="skip the served-fault latency runs")
    ap.add_argument("--spin-us", type=int, default=50,
                    help="the handler's spin compared with none (default 50)")
    ap.add_argument("--no-tcp", action="store_true",
                    help="skip the run with the pool over loopback TCP")
    ap.add_argument("--reps", type=int, default=3,
                    help="replays of each policy; medians are reported")
    ap.add_argument("--floor-reps", type=int, default=5)
    ap.add_argument("--floor-mib", type=int, default=64)
    ap.add_argument("--dir", default="/dev/shm",
                    help="where the temporary store goes (default /dev/shm)")
    ap.add_argument("--build", help="meson build directory (default: "
                    "$TIER_BUILD, else next to $TIERCTL, else ./build)")
    ap.add_argument("--json", metavar="FILE",
                    help="also write every number as JSON to FILE")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary store and image")
    args = ap.parse_args()
    args.policies = [p for p in args.policies.split(",") if p]
    for p in args.policies:
        if p not in POLICIES:
            ap.error("unknown policy %r" % p)
    if args.size % PAGE:
        ap.error("--size must be a multiple of 4096")

    try:
        tools = find_tools(args)
    except BenchError as e:
        log("run.py: %s" % e)
        return 1
    tmp = tempfile.mkdtemp(prefix="tier-bench.", dir=args.dir)
    b = Bench(args, tools, tmp)
    rc = 0
    try:
        b.floor()       # first: place chooses clusters by its rates
        b.prepare()
        b.run_set("local", args.policies)
        if args.instances > 1:
            b.run_set("multi",
                      [p for p in ("tiered", "eager") if p in args.policies],
                      instances=args.instances)
        if not args.no_second:
            b.run_set("second", args.policies, trace_file=b.trace2,
                      what="second run's trace (%d pages, ~%g%% different, "
                      "~%g%% of read-only pages now written)"
                      % (b.gen["trace2_pages"], args.diff, args.flip))
        if not args.no_faults:
            b.faults()
        if not args.no_tcp:
            b.tcp()
    except BenchError as e:
        log("run.py: %s" % e)
        b.result["error"] = str(e)
        rc = 1
    finally:
        b.result["loadavg_end"] = loadavg()
        if args.keep:
            log("run.py: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(b, "gen"):
        b.analyse()
        b.print_report()
        if any(not c["pass"] and c["target"].endswith("pages verified")
               for c in b.result["checks"]):
            rc = 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(b.result, f, indent=1)
            f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
