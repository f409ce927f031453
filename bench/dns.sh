#!/usr/bin/env bash
# bench/dns.sh: DNS queries per second through Ward's DNS filter, against the same resolver asked
# directly, in one run.
#
#   direct:         dnsperf -> dnsmasq (answers *.bench.test with 127.0.0.1, no cache misses)
#   ward allowed:   dnsperf -> agent DNS listener -> tunnel (TLS 1.3, HTTP/2) -> gateway DNS filter
#                   (a 1,000,000-domain block list loaded) -> dnsmasq
#   ward blocked:   the same path with names of the block list, answered NXDOMAIN by the gateway
#
# The gateway and the agent's listener run in one process (crates/ward-gateway/examples/dns_bench.rs:
# the gateway library with the test harness's certificates and snapshot, and the agent library's
# DNS listener with its own tunnel to it), so the run needs no server. Rounds are interleaved.
# Everything listens on 127.0.0.1 only; exactly the PIDs started here are stopped on exit.
#
# Usage (from the workspace root):
#   cargo build --release -p ward-gateway --example dns_bench
#   [REPS=3] [DUR=10] [CLIENTS=4] [OUTSTANDING=100] [LIST_SIZE=1000000] bash bench/dns.sh
# Tools: apt-get install -y dnsperf dnsmasq
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_BIN=${BENCH_BIN:-$TARGET/release/examples/dns_bench}
BASE=${BASE:-${TMPDIR:-/tmp}/ward-bench-dns}
REPS=${REPS:-3}; DUR=${DUR:-10}; CLIENTS=${CLIENTS:-4}; OUTSTANDING=${OUTSTANDING:-100}
LIST_SIZE=${LIST_SIZE:-1000000}; NAMES=${NAMES:-100000}
P_UP=26301 P_AGENT=26302

for t in dnsperf dnsmasq awk ss; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (apt-get install -y dnsperf dnsmasq)"; exit 1; }
done
[ -x "$BENCH_BIN" ] || { echo "no $BENCH_BIN: run 'cargo build --release -p ward-gateway --example dns_bench' first"; exit 1; }
for p in $P_UP $P_AGENT; do
  ss -lunH "sport = :$p" | grep -q . && { echo "UDP port $p is busy, abort"; exit 1; }
done
rm -rf "$BASE"; mkdir -p "$BASE"
log(){ echo "[$(date +%T)] $*" | tee -a "$BASE/run.log"; }

PIDS=()
cleanup(){
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
}
trap cleanup EXIT INT TERM

# The names asked: allowed ones under bench.test, blocked ones from the list.
awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "w%d.bench.test A\n", i }' >"$BASE/allowed.txt"
awk -v n="$NAMES" -v m="$LIST_SIZE" 'BEGIN { srand(1); for (i = 0; i < n; i++) printf "blocked-%d.example A\n", int(rand() * m) }' >"$BASE/blocked.txt"

dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
  --listen-address=127.0.0.1 --port=$P_UP --address=/bench.test/127.0.0.1 --cache-size=0 \
  --pid-file= --user=root --log-facility="$BASE/dnsmasq.log" &
PIDS+=($!)
log "dnsmasq pid=$! on 127.0.0.1:$P_UP"

UPSTREAM=127.0.0.1:$P_UP LISTEN=127.0.0.1:$P_AGENT LIST_SIZE=$LIST_SIZE "$BENCH_BIN" >"$BASE/ward.out" 2>"$BASE/ward.err" &
PIDS+=($!)
WARD_PID=$!
log "gateway + agent listener pid=$WARD_PID, loading $LIST_SIZE blocked domains"
for _ in $(seq 1 600); do grep -q ready "$BASE/ward.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$BASE/ward.out" || { echo "the gateway did not start:"; cat "$BASE/ward.err"; exit 1; }
sed 's/^/  /' "$BASE/ward.err" | tee -a "$BASE/run.log"
log "RSS of gateway + agent with the list loaded: $(awk '/VmRSS/ {print $2, $3}' /proc/$WARD_PID/status)"

# run NAME PORT FILE: one dnsperf run; appends "NAME qps avg_latency_ms lost" to results.
run(){
  local name=$1 port=$2 file=$3 out
  out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$file" -l "$DUR" -c "$CLIENTS" -q "$OUTSTANDING" -t 5 2>&1)
  echo "$out" >>"$BASE/dnsperf-$name.log"
  local qps lat lost
  qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
  lat=$(echo "$out" | awk '/Average Latency/ {printf "%.3f", $4 * 1000}')
  lost=$(echo "$out" | awk '/Queries lost/ {print $3}')
  echo "$name $qps $lat $lost" >>"$BASE/results.txt"
  log "$name: ${qps:-?} queries/s, average latency ${lat:-?} ms, lost ${lost:-?}"
}

for rep in $(seq 1 "$REPS"); do
  log "round $rep of $REPS"
  run direct $P_UP "$BASE/allowed.txt"
  run ward_allowed $P_AGENT "$BASE/allowed.txt"
  run ward_blocked $P_AGENT "$BASE/blocked.txt"
done

echo
echo "DNS, $REPS rounds of ${DUR}s, $CLIENTS clients, $OUTSTANDING outstanding; block list of $LIST_SIZE domains"
awk '
  { n[$1]++; q[$1] += $2; l[$1] += $3 }
  END {
    printf "%-14s %14s %18s\n", "path", "queries/s", "avg latency ms"
    split("direct ward_allowed ward_blocked", order, " ")
    for (i = 1; i <= 3; i++) { k = order[i]; if (n[k]) printf "%-14s %14.0f %18.3f\n", k, q[k] / n[k], l[k] / n[k] }
    if (q["direct"] > 0) {
      printf "ratio ward_allowed / direct: %.2f\n", q["ward_allowed"] / q["direct"]
      printf "ratio ward_blocked / direct: %.2f\n", q["ward_blocked"] / q["direct"]
    }
  }' "$BASE/results.txt" | tee -a "$BASE/run.log"
