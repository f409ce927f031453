#!/usr/bin/env python3
"""Summary of bench/private-access.sh's raw.tsv: medians over rounds, Ward's ratios to its peers,
and the idle-tunnel memory, each next to its target from the design brief.

raw.tsv rows: kind<TAB>label<TAB>round<TAB>key=value...   usage: summarize.py raw.tsv IDLE_N
"""
import sys
import statistics as st
from collections import OrderedDict, defaultdict

rows = OrderedDict()  # (kind, label) -> {round: {key: value}}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 4:
        continue
    d = rows.setdefault((f[0], f[1]), defaultdict(dict))
    for kv in f[3:]:
        k, _, v = kv.partition("=")
        try:
            d[f[2]][k] = float(v)
        except ValueError:
            pass
idle_n = int(sys.argv[2]) if len(sys.argv) > 2 else 0


def vals(kind, label, key):
    return [r[key] for r in rows.get((kind, label), {}).values() if key in r]


def med(kind, label, key):
    v = vals(kind, label, key)
    return st.median(v) if v else None


def rng(kind, label, key):
    v = vals(kind, label, key)
    return f"[{min(v):.4g}..{max(v):.4g}]" if v else ""


def per_round_ratio(kind, a, b, key):
    """Median over rounds of a/b within the same round (robust to a slow round)."""
    ra, rb = rows.get((kind, a), {}), rows.get((kind, b), {})
    r = [ra[k][key] / rb[k][key] for k in ra if k in rb and rb[k].get(key)]
    return st.median(r) if r else None


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def others(label):
    """CPU of everything else on the machine during the run (busy minus iperf3 and relays), % of a core."""
    out = []
    for r in rows.get(("iperf", label), {}).values():
        if "sys_busy_pct" in r:
            out.append(r["sys_busy_pct"] - r.get("relay_cpu_pct", 0) - r.get("client_cpu_pct", 0)
                       - r.get("server_cpu_pct", 0))
    return out


print("== 1. bulk TCP, iperf3 single stream (Gbit/s, median of rounds [min..max]; CPU in % of one core)")
for (kind, label) in rows:
    if kind != "iperf":
        continue
    sides = "  ".join(f"{k}={fmt(med(kind, label, k), '.0f')}" for k in ("side1_cpu_pct", "side2_cpu_pct")
                      if vals(kind, label, k))
    print(f"  {label:16s} {fmt(med(kind, label, 'Gbit_s')):>6s} {rng(kind, label, 'Gbit_s'):18s}"
          f" x{fmt(per_round_ratio(kind, label, 'direct', 'Gbit_s'), '.2f')} direct"
          f"  relay_cpu={fmt(med(kind, label, 'relay_cpu_pct'), '.0f')} {sides}"
          f"  iperf_client={fmt(med(kind, label, 'client_cpu_pct'), '.0f')}"
          f" iperf_server={fmt(med(kind, label, 'server_cpu_pct'), '.0f')}"
          f" machine_busy={fmt(med(kind, label, 'sys_busy_pct'), '.0f')}"
          f" other={fmt(st.median(others(label)) if others(label) else None, '.0f')}")
print("  (stunnel: side1 = server, side2 = client; Ward: side1 = ward server/gateway, side2 = agent;"
      " R_ = reverse, server sends;"
      " other = machine busy minus iperf3 and relays, i.e. background load and kernel softirq)")
for ward in ("ward_forward", "ward_socks5", "R_ward_forward"):
    peer_st = "R_stunnel_mtls" if ward.startswith("R_") else "stunnel_mtls"
    if med("iperf", ward, "Gbit_s") is None:
        continue
    a = med("iperf", ward, "Gbit_s")
    line = f"  {ward}: x{fmt(a / med('iperf', peer_st, 'Gbit_s') if med('iperf', peer_st, 'Gbit_s') else None)} {peer_st}" \
           f" (per-round median x{fmt(per_round_ratio('iperf', ward, peer_st, 'Gbit_s'))}; target >= 1.30)"
    if not ward.startswith("R_") and med("iperf", "dante_socks5", "Gbit_s"):
        line += f", x{fmt(a / med('iperf', 'dante_socks5', 'Gbit_s'))} dante_socks5" \
                f" (per-round x{fmt(per_round_ratio('iperf', ward, 'dante_socks5', 'Gbit_s'))})"
    print(line)

print("\n== 2. new connection: connect + GET 1 KiB + close, sequential (us, median of rounds [min..max])")
d50 = med("conntest", "seq_direct", "p50_us")
d99 = med("conntest", "seq_direct", "p99_us")
for (kind, label) in rows:
    if kind != "conntest":
        continue
    p50, p99 = med(kind, label, "p50_us"), med(kind, label, "p99_us")
    add = f"  added p50 {p50 - d50:+.0f} us, p99 {p99 - d99:+.0f} us" if label != "seq_direct" and d50 else ""
    print(f"  {label:18s} p50={fmt(p50, '.0f'):>5s} {rng(kind, label, 'p50_us'):14s} p99={fmt(p99, '.0f'):>5s}"
          f" {rng(kind, label, 'p99_us'):14s} conn/s={fmt(med(kind, label, 'conn_per_s'), '.0f')}"
          f" fails={fmt(med(kind, label, 'fails'), '.0f')}"
          f" relay_cpu_us/conn={fmt(med(kind, label, 'relay_cpu_us_per_conn'), '.0f')}"
          + "".join(f" {k.split('_')[0]}={fmt(med(kind, label, k), '.0f')}"
                    for k in ("side1_cpu_us_per_conn", "side2_cpu_us_per_conn") if vals(kind, label, k))
          + "".join(f" {k.split('_')[0]}_cs={fmt(med(kind, label, k), '.1f')}"
                    for k in ("side1_cs_per_conn", "side2_cs_per_conn") if vals(kind, label, k))
          + add)
w50 = med("conntest", "seq_ward_forward", "p50_us")
h50 = med("conntest", "seq_haproxy", "p50_us")
if w50 and d50:
    print(f"  Ward forward adds {w50 - d50:.0f} us at p50 (target <= 150 us); haproxy adds {h50 - d50:.0f} us")

print("\n== 3. idle tunnel memory (ward server embeds the gateway; RSS in KiB)")
mem = {label: d["1"] for (kind, label), d in rows.items() if kind == "mem"}
for label, r in mem.items():
    ref = mem.get("baseline") if label.startswith("idle_") else mem.get("before_synthetic")
    extra = ""
    if ref and label.startswith(("idle_", "synthetic_")) and int(label.split("_")[1]) > 0:
        n = int(label.split("_")[1])
        extra = (f"  -> {(r['server_rss_kib'] - ref['server_rss_kib']) / n:.1f} KiB RSS per idle tunnel"
                 f" ({(r['server_anon_kib'] - ref['server_anon_kib']) / n:.1f} KiB anon)")
        steps = [k for k in mem if k.startswith(label.split("_")[0] + "_") and int(k.split("_")[1]) < n]
        if steps:  # marginal: from the previous step to this one
            p = mem[steps[-1]]
            m = int(steps[-1].split("_")[1])
            extra += f"; marginal {m}->{n}: {(r['server_rss_kib'] - p['server_rss_kib']) / (n - m):.1f} KiB"
    print(f"  {label:24s} rss={r['server_rss_kib']:.0f} anon={r['server_anon_kib']:.0f}"
          f" tunnels={r['tunnels']:.0f} (expected {r['expected']:.0f}){extra}")
a = rows.get(("agent_mem", "idle_agent"), {}).get("1")
if a:
    print(f"  idle agent process RSS: median {a['median_rss_kib']:.0f} KiB, min {a['min_rss_kib']:.0f},"
          f" max {a['max_rss_kib']:.0f}, over {a['n']:.0f} agents")
print("  (idle_N: real `ward agent up` processes, against the baseline; synthetic_N: idle_tunnels.py,"
      " against before_synthetic; marginal: from the previous step)")
print("  target: <= 32 KiB per idle tunnel at the gateway")
