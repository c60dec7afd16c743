#!/usr/bin/env python3
"""pcaploop throughput benchmark: one run, every method compared side by side.

    python benchmarks/bench.py            # 2 M packets, median of 3 runs
    python benchmarks/bench.py --quick    # 500 k packets, 1 run

Every measurement runs in its own child process; its peak RSS is that
child's own ``ru_maxrss`` (collected with ``os.wait4`` on exactly that
child, so children never mix).  Python children time only their work
(imports and a warm-up on a 10-packet file come first, untimed); external
commands (``cat``, ``tshark``, the pcaploop CLI) are timed as whole
processes.  Absolute numbers vary ±20–35 % on shared VMs: read the ratios
within one run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TARGETS = {
    "decode_vs_cat": 4.0,  # pcaploop decode at most 4x slower than cat
    "vs_dpkt": 50.0,  # at least 50x the dpkt per-packet decode rate
    "decode_rss_mib": 600.0,
    "cold_start_s": 1.5,
    "analyze_pps": 1.5e6,
    "rss_growth": 0.10,  # full-file decode peak RSS at most +10 % over the prefix
}

TSHARK_FIELDS = [
    "frame.time_epoch",
    "eth.src",
    "eth.dst",
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ip.id",
    "ip.proto",
    "ip.len",
    "ip.flags",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "udp.srcport",
    "udp.dstport",
    "icmp.type",
    "icmp.code",
]


# ----------------------------------------------------------------------------
# children: `bench.py --child KIND ...` prints one JSON line as its last output
# ----------------------------------------------------------------------------
def _child(argv: list[str]) -> int:
    kind, args = argv[0], argv[1:]
    res = CHILDREN[kind](*args)
    import resource

    res["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(res), flush=True)
    return 0


def _c_decode(path: str, tiny: str) -> dict:
    """pcaploop streaming decode (Loader.run), columns consumed and discarded per block
    (reuse=True: the way ``pcaploop info`` streams, arrays overwritten by the next block)."""
    from pcaploop.ingest.loader import Loader
    from pcaploop.ingest.specs import CaptureSpec

    def run(p):
        loader = Loader([CaptureSpec(p)], {})
        n = 0
        for cols, _arp in loader.run(reuse=True):
            n += len(cols["time_ns"])
        return n, loader

    run(tiny)  # load the cached kernels before timing
    c, t = time.process_time(), time.perf_counter()
    n, loader = run(path)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    pts = loader.points
    return {
        "work_s": dt,
        "work_cpu_s": dc,
        "n": sum(p.records for p in pts),
        "decoded": n,
        "skipped": {k: sum(p.skipped[k] for p in pts) for k in pts[0].skipped},
    }


def _c_stage(stage: str, path: str, tiny: str) -> dict:
    """Profile stages of the decode path: walk / kernel / BatchDecoder / loader."""
    import numpy as np

    from pcaploop.decode import batch as D
    from pcaploop.decode import layout
    from pcaploop.decode.fingerprint import RUN_KEY
    from pcaploop.ingest.loader import BLOCK_ROWS
    from pcaploop.read import open_capture

    iface_codes = np.ones(1, dtype=np.int64)  # Ethernet

    def run(p):
        n = 0
        nb = 0
        bd = D.BatchDecoder(RUN_KEY, capacity=BLOCK_ROWS)  # blocks as the Loader's
        for b in open_capture(p).batches():
            nb += 1
            n += len(b.off)
            if stage == "kernel":
                T = layout.empty(len(b.off))  # the kernel writing typed columns, nothing else
                D.run_kernel(
                    b.buf,
                    b.off,
                    b.caplen,
                    b.wirelen,
                    b.time_ns,
                    b.iface,
                    b.direction,
                    0,
                    iface_codes,
                    RUN_KEY,
                    T,
                    0,
                )
            elif stage == "columns":
                for _blk in bd.add(b, iface_codes):
                    pass
        if stage == "columns" and bd.fill:
            bd.flush()
        return n, nb

    if stage == "loader":
        r = _c_decode(path, tiny)
        return r
    run(tiny)
    c, t = time.process_time(), time.perf_counter()
    n, nb = run(path)
    return {
        "work_s": time.perf_counter() - t,
        "work_cpu_s": time.process_time() - c,
        "n": n,
        "batches": nb,
    }


def _c_dpkt(path: str) -> dict:
    """dpkt per-packet full decode into a pandas DataFrame."""
    import dpkt
    import pandas as pd

    c, t = time.process_time(), time.perf_counter()
    rows = {
        k: []
        for k in (
            "time",
            "eth_src",
            "eth_dst",
            "src",
            "dst",
            "ttl",
            "ip_id",
            "proto",
            "ip_len",
            "df",
            "sport",
            "dport",
            "tcp_flags",
            "icmp_type",
            "icmp_code",
        )
    }
    n = 0
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            n += 1
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP):
                continue
            l4 = ip.data
            sport = dport = flags = itype = icode = None
            if isinstance(l4, dpkt.tcp.TCP):
                sport, dport, flags = l4.sport, l4.dport, l4.flags
            elif isinstance(l4, dpkt.udp.UDP):
                sport, dport = l4.sport, l4.dport
            elif isinstance(l4, dpkt.icmp.ICMP):
                itype, icode = l4.type, l4.code
            rows["time"].append(ts)
            rows["eth_src"].append(eth.src)
            rows["eth_dst"].append(eth.dst)
            rows["src"].append(ip.src)
            rows["dst"].append(ip.dst)
            rows["ttl"].append(ip.ttl)
            rows["ip_id"].append(ip.id)
            rows["proto"].append(ip.p)
            rows["ip_len"].append(ip.len)
            rows["df"].append(bool(ip.df))
            rows["sport"].append(sport)
            rows["dport"].append(dport)
            rows["tcp_flags"].append(flags)
            rows["icmp_type"].append(itype)
            rows["icmp_code"].append(icode)
    df = pd.DataFrame(rows)
    return {
        "work_s": time.perf_counter() - t,
        "work_cpu_s": time.process_time() - c,
        "n": n,
        "rows": len(df),
    }


def _c_read_csv(path: str) -> dict:
    import pandas as pd

    c, t = time.process_time(), time.perf_counter()
    df = pd.read_csv(path)
    return {"work_s": time.perf_counter() - t, "work_cpu_s": time.process_time() - c, "n": len(df)}


def _c_nothing() -> dict:
    return {"work_s": 0.0, "n": 0}


CHILDREN = {
    "decode": _c_decode,
    "stage": _c_stage,
    "dpkt": _c_dpkt,
    "read_csv": _c_read_csv,
    "nothing": _c_nothing,
}


# ----------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------
def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PCAPLOOP_FP_KEY", "000102030405060708090a0b0c0d0e0f")
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


TIME_BIN = "/usr/bin/time"


def measure(cmd: list[str], stdout_path: str | None = None) -> dict:
    """Run one child; wall time and that child's own peak RSS.

    Linux carries the RSS high-water mark of the forking process over into
    a forked-and-exec'd child's ``ru_maxrss``, so the child is started
    through a small launcher (GNU ``/usr/bin/time``, or else a bare Python
    wrapper) whose own footprint is the floor, never this process's.
    """
    out = open(stdout_path, "wb") if stdout_path else tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    rfd, rpath = tempfile.mkstemp(prefix="pcaploop-bench-rusage-")
    os.close(rfd)
    if os.access(TIME_BIN, os.X_OK):
        full = [TIME_BIN, "-f", "%M %U %S", "-o", rpath, *cmd]
    else:
        full = [sys.executable, "-S", str(Path(__file__).resolve()), "--wrap", rpath, *cmd]
    t = time.perf_counter()
    p = subprocess.run(
        full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO, env=child_env()
    )
    wall = time.perf_counter() - t
    try:
        rss_kib, ut, st = (
            float(x) for x in Path(rpath).read_text().strip().splitlines()[-1].split()
        )
    except (OSError, ValueError, IndexError):
        rss_kib = ut = st = float("nan")
    os.unlink(rpath)
    text = ""
    if not stdout_path:
        out.seek(0)
        text = out.read().decode(errors="replace")
    out.close()
    err.seek(0)
    etext = err.read().decode(errors="replace")
    err.close()
    res = {
        "wall_s": wall,
        "cpu_s": ut + st,
        "rss_mib": rss_kib / 1024,
        "rc": p.returncode,
        "stderr": etext,
        "stdout": text[-20000:],
    }
    if p.returncode == 0 and text.strip():
        with contextlib.suppress(ValueError):
            res.update(json.loads(text.strip().splitlines()[-1]))
    return res


def _wrap(argv: list[str]) -> int:
    """Fallback launcher: run argv[1:], write its ru_maxrss (KiB) to argv[0]."""
    p = subprocess.Popen(argv[1:])
    _, status, ru = os.wait4(p.pid, 0)
    with open(argv[0], "w") as f:
        f.write(f"{ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}\n")
    return os.waitstatus_to_exitcode(status)


def py_child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


def summarize(runs: list[dict]) -> dict:
    """Median of the runs' times; peak RSS is the maximum over the runs."""
    bad = [r for r in runs if r["rc"] != 0]
    if bad:
        r = bad[0]
        last = (r["stderr"].strip().splitlines() or [f"exit {r['rc']}"])[-1]
        return {"error": f"exit {r['rc']}: {last[:100]}", "runs": runs}
    res = dict(runs[0])
    for key in ("wall_s", "work_s", "cpu_s", "work_cpu_s"):
        if key in res:
            res[key] = statistics.median(r[key] for r in runs)
    res["rss_mib"] = max(r["rss_mib"] for r in runs)
    res["all_wall_s"] = [round(r["wall_s"], 3) for r in runs]
    if "work_s" in res:
        res["all_work_s"] = [round(r["work_s"], 3) for r in runs]
    return res


def generate(path: Path, packets: int) -> dict:
    """Run gen.py in its own process (it caches; this process stays small)."""
    subprocess.run(
        [sys.executable, str(HERE / "gen.py"), str(path), "--packets", str(packets)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(path.with_name(path.name + ".json").read_text())


def prefix_file(src: Path, dst: Path, k: int) -> Path:
    """The first k records of a classic pcap (cached next to it)."""
    import struct

    side = dst.with_name(dst.name + ".json")
    want = {
        "source": str(src),
        "source_size": src.stat().st_size,
        "source_mtime": src.stat().st_mtime_ns,
        "records": k,
    }
    if dst.exists() and side.exists():
        try:
            if json.loads(side.read_text()) == want:
                return dst
        except ValueError:
            pass
    with open(src, "rb") as f:
        head = f.read(24)
        endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        pos = 24
        for _ in range(k):
            f.seek(pos + 8)
            hdr = f.read(4)
            if len(hdr) < 4:
                break
            pos += 16 + struct.unpack(endian + "I", hdr)[0]
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, "rb") as f, open(tmp, "wb") as g:
        left = pos
        while left:
            chunk = f.read(min(left, 1 << 24))
            g.write(chunk)
            left -= len(chunk)
    os.replace(tmp, dst)
    side.write_text(json.dumps(want))
    return dst


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def fmt_rate(r: float | None) -> str:
    if r is None:
        return "n/a"
    if r >= 1e6:
        return f"{r / 1e6:.2f} M"
    if r >= 1e3:
        return f"{r / 1e3:.1f} k"
    return f"{r:.0f}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return _child(argv[1:])
    if argv and argv[0] == "--wrap":
        return _wrap(argv[1:])
    ap = argparse.ArgumentParser(
        description="pcaploop throughput benchmark (one run, all methods side by side)"
    )
    ap.add_argument("--quick", action="store_true", help="1 run, 500 k packets")
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per measurement (median; default 3, --quick 1)",
    )
    ap.add_argument(
        "--packets",
        type=int,
        default=None,
        help="packets in the test file (default 2,000,000, --quick 500,000)",
    )
    ap.add_argument(
        "--prefix",
        type=int,
        default=200_000,
        help="packets used for the slow "
        "methods (dpkt, tshark), whose rate is extrapolated (default 200,000)",
    )
    ap.add_argument(
        "--data-dir",
        default=os.environ.get(
            "PCAPLOOP_BENCH_DIR", os.path.join(tempfile.gettempdir(), "pcaploop-bench")
        ),
        help="where generated captures are cached (default $PCAPLOOP_BENCH_DIR "
        "or /tmp/pcaploop-bench)",
    )
    ap.add_argument("--no-breakdown", action="store_true", help="skip the decode-stage profile")
    ap.add_argument("--json", help="also write all measurements to this JSON file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args(argv)
    repeat = a.repeat or (1 if a.quick else 3)
    npk = a.packets or (500_000 if a.quick else 2_000_000)
    kpre = min(a.prefix, npk)
    krss = 500_000 if npk >= 1_000_000 else max(1, npk // 4)

    data = Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    big = data / f"bench-{npk}.pcap"
    tiny = data / "tiny-10.pcap"
    t = time.perf_counter()
    meta = generate(big, npk)
    generate(tiny, 10)
    pre = prefix_file(big, data / f"bench-{npk}-first{kpre}.pcap", kpre)
    rssp = prefix_file(big, data / f"bench-{npk}-first{krss}.pcap", krss)
    st = meta["stats"]
    print(
        f"test file: {big} — {npk:,} packets, {meta['size'] / 1e9:.2f} GB, avg frame "
        f"{st['avg_frame']} B, TCP/UDP/ICMP {st['tcp_share']:.0%}/{st['udp_share']:.0%}/"
        f"{st['icmp_share']:.0%}, loop replicas {st['replica_share']:.0%} "
        f"(ready in {time.perf_counter() - t:.1f} s)"
    )
    print(
        f"runs per measurement: {repeat} (median time, max peak RSS); "
        f"python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "pcaploop"],
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        dirty = [ln[3:] for ln in dirty if ln.strip()]
        print(
            f"pcaploop tree: {head or '?'}"
            + (f" + uncommitted changes in {len(dirty)} file(s) under pcaploop/" if dirty else "")
        )
    except OSError:
        pass
    for p in (big, pre, rssp, tiny):
        warm(p)

    # warm-up: compile/load the numba cache, run the CLI once
    print("warm-up (numba cache, CLI) …", flush=True)
    w = measure(py_child("decode", str(tiny), str(tiny)))
    if w["rc"] != 0:
        print("pcaploop decode does not run:\n" + w["stderr"][-2000:], file=sys.stderr)
    cli = [sys.executable, "-m", "pcaploop"]
    measure(cli + ["info", str(tiny)])
    measure(cli + ["analyze", str(tiny), "--json", os.devnull])

    jobs: dict[str, tuple] = {  # name: (command, stdout path)
        "cat": (["cat", str(big)], os.devnull),
        "decode": (py_child("decode", str(big), str(tiny)), None),
        "decode_prefix": (py_child("decode", str(rssp), str(tiny)), None),
        "dpkt": (py_child("dpkt", str(pre)), None),
    }
    if shutil.which("tshark"):
        csv = data / f"tshark-{kpre}.csv"
        targs = [
            "tshark",
            "-n",
            "-r",
            str(pre),
            "-T",
            "fields",
            "-E",
            "header=y",
            "-E",
            "separator=,",
            "-E",
            "quote=d",
            "-E",
            "occurrence=f",
        ]
        for f in TSHARK_FIELDS:
            targs += ["-e", f]
        jobs["tshark_run"] = (targs, str(csv))
        jobs["tshark_csv"] = (py_child("read_csv", str(csv)), None)
    jobs.update(
        {
            "interp": ([sys.executable, "-c", "pass"], None),
            "imports": ([sys.executable, "-c", "import numpy, pandas, numba"], None),
            "info_tiny": (cli + ["info", str(tiny)], None),
            "analyze_tiny": (cli + ["analyze", str(tiny), "--json", os.devnull], None),
            "analyze": (cli + ["analyze", str(big), "--json", os.devnull], None),
        }
    )
    if not a.no_breakdown:
        for s in ("walk", "kernel", "columns"):
            jobs[f"stage_{s}"] = (py_child("stage", s, str(big), str(tiny)), None)
    # rounds interleave the methods, so a burst of load elsewhere on the machine
    # hits every method rather than one
    runs: dict[str, list[dict]] = {k: [] for k in jobs}
    load0 = os.getloadavg()
    for rnd in range(repeat):
        print(f"round {rnd + 1}/{repeat}:", end="", flush=True)
        for name, (cmd, outp) in jobs.items():
            if runs[name] and runs[name][-1]["rc"] != 0:
                continue  # failed once: do not keep retrying
            t0 = time.perf_counter()
            runs[name].append(measure(cmd, stdout_path=outp))
            print(f" {name} {time.perf_counter() - t0:.1f}s", end="", flush=True)
        print(flush=True)
    load1 = os.getloadavg()
    R = {k: summarize(v) for k, v in runs.items()}
    R["cat"]["work_s"], R["cat"]["n"] = R["cat"]["wall_s"], npk
    R["cat"]["work_cpu_s"] = R["cat"]["cpu_s"]
    for k in ("analyze", "analyze_tiny", "info_tiny"):
        if "cpu_s" in R[k]:
            R[k]["work_cpu_s"] = R[k]["cpu_s"]
    if "tshark_run" in R:
        ts, rc = R.pop("tshark_run"), R.pop("tshark_csv")
        if "error" in ts or "error" in rc:
            R["tshark"] = {"error": ts.get("error") or rc.get("error")}
        else:
            R["tshark"] = {
                "work_s": ts["wall_s"] + rc["work_s"],
                "n": rc["n"],
                "work_cpu_s": ts["cpu_s"] + rc["work_cpu_s"],
                "rss_mib": max(ts["rss_mib"], rc["rss_mib"]),
                "tshark_s": ts["wall_s"],
                "read_csv_s": rc["work_s"],
                "tshark_rss_mib": ts["rss_mib"],
                "read_csv_rss_mib": rc["rss_mib"],
            }
    else:
        R["tshark"] = {"error": "tshark not installed"}
    print(
        f"load average (1 min) before / after: {load0[0]:.1f} / {load1[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )

    report(R, npk, kpre, krss, meta, repeat)
    verdicts = targets(R, npk, krss)
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "packets": npk,
                    "prefix": kpre,
                    "repeat": repeat,
                    "file": meta,
                    "results": _clean(R),
                    "targets": verdicts,
                },
                indent=1,
                default=str,
            )
        )
    return 1 if a.strict and any(v[0] != "PASS" for v in verdicts.values()) else 0


def _clean(R: dict) -> dict:
    return {
        k: {kk: vv for kk, vv in v.items() if kk not in ("stdout", "stderr", "runs")}
        for k, v in R.items()
    }


def _rate(r: dict) -> float | None:
    if not r or "error" in r or not r.get("work_s"):
        return None
    return r["n"] / r["work_s"]


def report(R: dict, npk: int, kpre: int, krss: int, meta: dict, repeat: int) -> None:
    cat_rate = _rate(R["cat"])
    rows = [
        ("cat FILE > /dev/null", "cat", False),
        ("pcaploop streaming decode (Loader.run)", "decode", False),
        (f"  same, first {krss:,} packets", "decode_prefix", False),
        ("dpkt per-packet full decode → DataFrame", "dpkt", True),
        ("tshark -T fields → CSV → pandas.read_csv", "tshark", True),
        ("pcaploop analyze FILE --json /dev/null", "analyze", False),
    ]
    print()
    print(
        f"{'method':<44} {'packets/s':>10} {'seconds':>9} {'× cat':>8} {'CPU s':>8} "
        f"{'peak RSS MiB':>13}"
    )
    print("-" * 97)
    for label, key, extrap in rows:
        r = R.get(key, {})
        if "error" in r or not r:
            print(f"{label:<44} {'n/a (' + r.get('error', 'not run') + ')'}")
            continue
        if key == "analyze":
            rate = npk / r["wall_s"]
            secs = r["wall_s"]
            cpu = r.get("work_cpu_s", float("nan"))
        else:
            rate = _rate(r)
            n = krss if key == "decode_prefix" else npk
            secs = n / rate
            cpu = r.get("work_cpu_s", float("nan")) * secs / r["work_s"]
        star = "*" if extrap else " "
        slower = cat_rate / rate if cat_rate and rate else float("nan")
        print(
            f"{label:<44} {fmt_rate(rate):>10} {secs:>8.2f}{star} {slower:>8.1f} "
            f"{cpu:>8.2f} {r['rss_mib']:>13.0f}"
        )
    print("-" * 97)
    print(
        f"* measured on the first {kpre:,} packets; seconds extrapolated to {npk:,} packets "
        "at the measured rate."
    )
    print("  Python rows time the work only (after imports and a warm-up on a 10-packet file);")
    print(
        "  cat, tshark and the CLI rows are whole processes.  analyze includes interpreter "
        "start and imports."
    )
    print(
        "  CPU s = user + system CPU time of that work: steadier than wall time when other "
        "jobs load the machine."
    )
    ts = R.get("tshark", {})
    if "tshark_s" in ts:
        print(
            f"  tshark: {ts['tshark_s']:.2f} s (RSS {ts['tshark_rss_mib']:.0f} MiB) + "
            f"read_csv {ts['read_csv_s']:.2f} s (RSS {ts['read_csv_rss_mib']:.0f} MiB) "
            f"for {kpre:,} packets"
        )
    d = R.get("decode", {})
    if "error" not in d and d:
        print(
            f"  decode accounting: records {d['n']:,}, decoded {d['decoded']:,}, "
            f"skipped {d['skipped']}"
        )
    print()
    ip, im = R["interp"], R["imports"]
    print(f"interpreter start (python -c pass):          {ip['wall_s']:.3f} s")
    print(f"python -c 'import numpy, pandas, numba':     {im['wall_s']:.3f} s")
    it = R["info_tiny"]
    if "error" in it:
        print(f"cold start (pcaploop info TINY.pcap):         n/a ({it['error']})")
    else:
        print(
            f"cold start (pcaploop info TINY.pcap):        {it['wall_s']:.3f} s "
            f"({it['wall_s'] - ip['wall_s']:.3f} s over interpreter start), "
            f"peak RSS {it['rss_mib']:.0f} MiB"
        )
    at, ab = R["analyze_tiny"], R["analyze"]
    if "error" in at or "error" in ab:
        print(
            f"analyze throughput:                          n/a "
            f"({at.get('error') or ab.get('error')})"
        )
    else:
        net = ab["wall_s"] - at["wall_s"]
        print(f"analyze on TINY.pcap:                        {at['wall_s']:.3f} s")
        rate = fmt_rate(npk / net) + " packets/s" if net > 0 else "not measurable"
        print(
            f"analyze throughput (big − tiny):             {rate} "
            f"({net:.2f} s for {npk:,} packets), peak RSS {ab['rss_mib']:.0f} MiB"
        )
    if "stage_walk" in R:
        print()
        print("decode stages (each a separate run, cumulative; work time only):")
        prev = prevc = 0.0
        for key, label in (
            ("stage_walk", "read + walk records (CaptureFile.batches)"),
            ("stage_kernel", "+ kernel: record fields, packet, digest"),
            ("stage_columns", "+ BatchDecoder slabs (decode.py)"),
            ("decode", "+ Loader (points, accounting) = full"),
        ):
            r = R.get(key, {})
            if "error" in r or not r:
                print(f"  {label:<46} n/a")
                continue
            s = r["work_s"]
            c = r.get("work_cpu_s", float("nan"))
            extra = f"  batches {r['batches']}" if "batches" in r else ""
            print(
                f"  {label:<46} {s:6.3f} s  (+{s - prev:6.3f} s, "
                f"{(s - prev) / npk * 1e9:5.0f} ns/packet)  CPU {c:6.3f} s "
                f"(+{(c - prevc) / npk * 1e9:4.0f} ns/packet){extra}"
            )
            prev, prevc = s, c
        if "work_s" in R["cat"]:
            print(f"  {'cat (for reference)':<46} {R['cat']['work_s']:6.3f} s")


def targets(R: dict, npk: int, krss: int) -> dict:
    out: dict[str, tuple[str, str]] = {}
    cat, dec, dp = _rate(R["cat"]), _rate(R["decode"]), _rate(R.get("dpkt", {}))

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    if cat and dec:
        x = cat / dec
        out["decode within 4× of cat"] = (
            verdict(x <= TARGETS["decode_vs_cat"]),
            f"{x:.1f}× slower than cat",
        )
    else:
        out["decode within 4× of cat"] = ("N/A", "decode or cat did not run")
    if dec and dp:
        x = dec / dp
        out["decode ≥ 50× dpkt per-packet"] = (verdict(x >= TARGETS["vs_dpkt"]), f"{x:.0f}×")
    else:
        out["decode ≥ 50× dpkt per-packet"] = ("N/A", "decode or dpkt did not run")
    if dec:
        rss = R["decode"]["rss_mib"]
        out["decode peak RSS ≤ 600 MiB"] = (
            verdict(rss <= TARGETS["decode_rss_mib"]),
            f"{rss:.0f} MiB",
        )
        pr = R.get("decode_prefix", {})
        if "rss_mib" in pr and "error" not in pr:
            g = rss / pr["rss_mib"] - 1
            out["decode RSS flat in file length"] = (
                verdict(g <= TARGETS["rss_growth"]),
                f"{pr['rss_mib']:.0f} MiB on {krss:,} packets → {rss:.0f} MiB on {npk:,} "
                f"({g:+.1%}; limit +10 %)",
            )
    it = R["info_tiny"]
    if "error" in it:
        out["cold start ≤ 1.5 s"] = ("N/A", f"pcaploop info failed: {it['error']}")
    else:
        out["cold start ≤ 1.5 s"] = (
            verdict(it["wall_s"] <= TARGETS["cold_start_s"]),
            f"{it['wall_s']:.2f} s",
        )
    at, ab = R["analyze_tiny"], R["analyze"]
    if "error" in at or "error" in ab:
        out["analyze ≥ 1.5 M packets/s"] = (
            "N/A",
            f"analyze failed: {at.get('error') or ab.get('error')}",
        )
    else:
        net = ab["wall_s"] - at["wall_s"]
        if net <= 0:
            out["analyze ≥ 1.5 M packets/s"] = (
                "N/A",
                "big − tiny ≤ 0: start-up time and noise dominate; use more packets",
            )
        else:
            pps = npk / net
            out["analyze ≥ 1.5 M packets/s"] = (
                verdict(pps >= TARGETS["analyze_pps"]),
                f"{fmt_rate(pps)} packets/s (big − tiny)",
            )
    print()
    print("targets:")
    for k, (v, why) in out.items():
        print(f"  {v:<5} {k:<34} {why}")
    return out


if __name__ == "__main__":
    sys.exit(main())
