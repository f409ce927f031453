#!/usr/bin/env bash
# bench/internet.sh: Ward's filtering forward proxy, side by side with squid and tinyproxy, in one run.
#
# 1 KiB GETs (keep-alive, wrk with WRK_T threads and WRK_C connections) in absolute form through:
#   - squid (no cache, no access log), as ../shared/bench/peers.sh configures it;
#   - tinyproxy (it closes every connection);
#   - Ward's explicit proxy port (`ward server --proxy-listen`, the embedded gateway), with a proxy
#     credential, a 1,000,000-domain block list loaded and a block rule naming it, and every request
#     written as a web access record (and shipped to the server's store);
#   - nginx directly, for scale.
# Rounds are interleaved (every path once per round); the summary gives medians and Ward's ratios to
# each peer (requests/s: higher is better; p99: lower is better). Target: >= 3x squid's requests/s
# with a p99 below squid's. WARD_BIN_B=another/ward runs a second build (say, the previous commit's)
# as the path `ward_b`, set up the same way, in the same rounds: a before/after on equal terms.
#
# CPU columns: the proxy's (its process and children), nginx's, wrk's, and the whole machine's busy
# share ("all", of nproc x 100 %): on a shared machine, what the others leave shows there.
#
# Everything listens on 127.0.0.1 only. Every process started here is recorded by PID, and exactly
# those PIDs (and their children) are terminated on exit.
#
# Usage (from the workspace root, after `cargo build --release -p ward`):
#   [REPS=3] [DUR=10] [WRK_T=2] [WRK_C=50] [LIST_N=1000000] [BASE=/tmp/ward-bench-inet] [WARD_BIN=...]
#   [WARD_BIN_B=...] [PERF=1] bash bench/internet.sh
# Tools: apt-get install -y nginx squid tinyproxy wrk jq (plus curl, ss, python3)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WARD=${WARD_BIN:-$ROOT/target/release/ward}
WARD_B_SRC=${WARD_BIN_B:-}   # optional: another build of Ward, run as the path `ward_b` in the same rounds
BASE=${BASE:-${TMPDIR:-/tmp}/ward-bench-inet}
REPS=${REPS:-3}; DUR=${DUR:-10}; WRK_T=${WRK_T:-2}; WRK_C=${WRK_C:-50}; LIST_N=${LIST_N:-1000000}

# Ports: a block of their own, away from peers.sh (252xx) and private-access.sh (262xx).
P_NGINX=27205 P_SQUID=27206 P_TINY=27207 P_WAPI=27210 P_WGW=27211 P_WPROXY=27212
P_WAPI_B=27220 P_WGW_B=27221 P_WPROXY_B=27222
ALL_PORTS="$P_NGINX $P_SQUID $P_TINY $P_WAPI $P_WGW $P_WPROXY $P_WAPI_B $P_WGW_B $P_WPROXY_B"

C=$BASE/conf L=$BASE/logs R=$BASE/results RUN=$BASE/run WWW=$BASE/www BIN=$BASE/bin WB=$BASE/ward
for t in nginx squid tinyproxy wrk jq curl ss python3; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (see the apt-get line at the top)"; exit 1; }
done
[ -x "$WARD" ] || { echo "no ward binary at $WARD: run 'cargo build --release -p ward' in $ROOT first"; exit 1; }
for p in $ALL_PORTS; do ss -ltnH "sport = :$p" | grep -q . && { echo "port $p is busy, abort"; exit 1; }; done

rm -rf "$WB" "$BASE/ward_b" "$R" "$L"
mkdir -p "$C" "$L" "$R" "$RUN" "$WWW" "$BIN" "$WB/ctl"
cp "$WARD" "$BIN/ward" || exit 1
WARD_SRC=$WARD WARD=$BIN/ward WARD_B=""
if [ -n "$WARD_B_SRC" ]; then cp "$WARD_B_SRC" "$BIN/ward_b" || exit 1; WARD_B=$BIN/ward_b; fi
chmod 755 "$BASE" "$WWW"; chmod 1777 "$L" "$RUN"   # squid runs as proxy, nginx and tinyproxy workers as nobody
CLK=$(getconf CLK_TCK)
log(){ echo "[$(date +%T)] $*" | tee -a "$R/run.log"; }

declare -a PIDS=()
start(){ # start NAME cmd... : background, foreground-mode daemon; PID recorded
  local name=$1; shift
  "$@" >"$L/$name.out" 2>&1 &
  local pid=$!; PIDS+=("$pid:$name"); echo "$pid" >"$RUN/$name.mypid"; log "started $name pid=$pid"
}
pid_of(){ cat "$RUN/$1.mypid"; }
kids(){ ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }
cleanup(){
  local e pid all=()
  for e in "${PIDS[@]}"; do
    pid=${e%%:*}
    kill -0 "$pid" 2>/dev/null || continue
    all+=("$pid"); for k in $(kids "$pid"); do all+=("$k"); done
    kill -TERM "$pid" 2>/dev/null
  done
  for _ in $(seq 1 50); do
    local alive=0; for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"; done
  PIDS=()
}
trap cleanup EXIT INT TERM
wait_port(){ for _ in $(seq 1 200); do ss -ltnH "sport = :$1" | grep -q 127.0.0.1 && return 0; sleep 0.1; done; log "ERROR: port $1 not listening"; return 1; }
children_secs(){ # FILE: seconds of CPU of this shell's waited-for children so far (user + system)
  times >"$1"; tail -1 "$1" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] } print t }' >"$1.s"; }
cpu_ticks(){ local t=0 p k; for p in "$@"; do for k in "$p" $(kids "$p"); do
  [ -r /proc/$k/stat ] && t=$((t + $(awk '{print $14+$15+$16+$17}' /proc/$k/stat))); done; done; echo $t; }

{
  echo "date: $(date -Is)"; echo "kernel: $(uname -r)"; echo "cpus: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"
  wrk -v 2>&1 | head -1; nginx -v 2>&1; squid -v | head -1; tinyproxy -v
  echo "ward: $("$WARD" --version) from $WARD_SRC, git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  [ -n "$WARD_B" ] && echo "ward_b: $("$WARD_B" --version) from $WARD_B_SRC"
  echo "wrk: -t$WRK_T -c$WRK_C -d${DUR}s, $REPS interleaved rounds; block list: $LIST_N names"
} >"$R/versions.txt" 2>&1
cat "$R/versions.txt"

# ------------------------------------------------------------------ peers
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$WWW/1k.bin"
cat >"$C/nginx.conf" <<EOF
worker_processes 1;
pid $RUN/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$P_NGINX; root $WWW; }
}
EOF
cat >"$C/squid.conf" <<EOF
http_port 127.0.0.1:$P_SQUID
pid_filename $RUN/squid.pid
cache_log $L/squid-cache.log
access_log none
cache_store_log none
cache deny all
cache_mem 0 MB
coredump_dir $RUN
shutdown_lifetime 1 seconds
pinger_enable off
netdb_filename none
icp_port 0
htcp_port 0
max_filedescriptors 16384
http_access allow localhost
http_access deny all
EOF
cat >"$C/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $P_TINY
Listen 127.0.0.1
Timeout 60
LogFile "$L/tinyproxy.log"
LogLevel Error
MaxClients 1000
Allow 127.0.0.1
EOF
cat >"$C/req.lua" <<'EOF'
wrk.method = "GET"
wrk.path = os.getenv("WRK_PATH")
wrk.headers["Host"] = os.getenv("WRK_HOST")
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then wrk.headers["Proxy-Authorization"] = auth end
done = function(s, lat, req)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    s.requests, s.requests / (s.duration / 1e6), lat:percentile(50), lat:percentile(90), lat:percentile(99),
    lat.max, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout, s.errors.status))
end
EOF
start nginx nginx -e "$L/nginx-error.log" -c "$C/nginx.conf" -g 'daemon off;'; wait_port $P_NGINX || exit 1
start squid squid -N -f "$C/squid.conf";                                     wait_port $P_SQUID || exit 1
start tinyproxy tinyproxy -d -c "$C/tinyproxy.conf";                         wait_port $P_TINY || exit 1

# ------------------------------------------------------------------ Ward: server, list, rule, credential
log "writing a $LIST_N-name block list (hosts format)"
python3 - "$LIST_N" >"$BASE/blocklist.txt" <<'EOF'
import sys
n = int(sys.argv[1])
w = sys.stdout.write
w("# synthetic block list for bench/internet.sh\n")
for i in range(n):
    w(f"0.0.0.0 ads-{i:07d}.tracker{i % 997}.example\n")
EOF
ORIGIN=127.0.0.1:$P_NGINX
setup_ward(){ # NAME BIN API_PORT GATEWAY_PORT PROXY_PORT: a server with the list, the rule and a credential
  local name=$1 bin=$2 papi=$3 pgw=$4 pproxy=$5 wb=$BASE/$1 pw i code t0 t1 cred puser ppass px srv
  local api=http://127.0.0.1:$papi
  rm -rf "$wb"; mkdir -p "$wb/ctl"
  wctl(){ WARD_CONFIG_DIR=$wb/ctl "$bin" ctl "$@"; }
  pw="bench-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  start "$name-server" env WARD_BOOTSTRAP_PASSWORD="$pw" "$bin" server --data-dir "$wb/data" \
    --listen 127.0.0.1:$papi --gateway-listen 127.0.0.1:$pgw --proxy-listen 127.0.0.1:$pproxy \
    --internet-allow-private
  wait_port $papi || exit 1; wait_port $pproxy || exit 1
  srv=$(pid_of "$name-server")
  for i in $(seq 1 30); do
    printf '%s\n' "$pw" | wctl --server "$api" login --tenant default --user admin --password-stdin >"$L/$name-ctl-login.out" 2>&1 && break
    [ "$i" = 30 ] && { log "ERROR: cannot sign in to Ward ($name)"; cat "$L/$name-ctl-login.out"; exit 1; }
    sleep 0.5
  done
  t0=$(date +%s.%N)
  { wctl user create alice
    wctl domain-list import blocklist "$BASE/blocklist.txt"
    wctl internet rule create --priority 10 --action block --list blocklist
  } >"$L/$name-ctl-policy.out" 2>&1 || { log "ERROR: policy setup failed ($name)"; cat "$L/$name-ctl-policy.out"; exit 1; }
  t1=$(date +%s.%N)
  log "$name: list imported and rule created in $(echo "$t1 - $t0" | bc -l | cut -c1-5) s"
  cred=$(wctl user proxy-credential create alice -o json) || { log "ERROR: no proxy credential ($name)"; exit 1; }
  puser=$(echo "$cred" | jq -r .username) ppass=$(echo "$cred" | jq -r .password)
  px="http://$puser:$ppass@127.0.0.1:$pproxy"
  # The gateway applies the snapshot (a million names to compile) in the background: wait until a
  # blocked name is refused, then check the allowed path.
  for i in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -x "$px" http://ads-0000042.tracker42.example/ 2>/dev/null)
    [ "$code" = 403 ] && break
    [ "$i" = 120 ] && { log "ERROR: the block list is not enforced by $name (last answer $code)"; exit 1; }
    sleep 0.5
  done
  {
    echo "== blocked name through $name: $(curl -s -o /dev/null -w '%{http_code}' -x "$px" http://ads-$(printf %07d $((LIST_N - 1))).tracker$(((LIST_N - 1) % 997)).example/)"
    echo "== $name without a credential: $(curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$pproxy" "http://$ORIGIN/1k.bin")"
    echo "== allowed through $name:      $(curl -s -o /dev/null -w '%{http_code} %{size_download}' -x "$px" "http://$ORIGIN/1k.bin")"
    echo "== $name server RSS after the list: $(awk '/VmRSS/{print $2, $3}' /proc/$srv/status)"
  } | tee -a "$R/functional.txt"
  printf 'Basic %s' "$(printf '%s:%s' "$puser" "$ppass" | base64 -w0)" >"$RUN/$name.auth"
}
setup_ward ward "$WARD" $P_WAPI $P_WGW $P_WPROXY
SRV=$(pid_of ward-server) AUTH=$(cat "$RUN/ward.auth")
if [ -n "$WARD_B" ]; then
  setup_ward ward_b "$WARD_B" $P_WAPI_B $P_WGW_B $P_WPROXY_B
  SRV_B=$(pid_of ward_b-server) AUTH_B=$(cat "$RUN/ward_b.auth")
fi
{
  echo "== squid:                     $(curl -s -o /dev/null -w '%{http_code} %{size_download}' -x "http://127.0.0.1:$P_SQUID" "http://$ORIGIN/1k.bin")"
  echo "== tinyproxy:                 $(curl -s -o /dev/null -w '%{http_code} %{size_download}' -x "http://127.0.0.1:$P_TINY" "http://$ORIGIN/1k.bin")"
} | tee -a "$R/functional.txt"

# ------------------------------------------------------------------ rounds
wrk_run(){ # label port path auth pids...
  local label=$1 port=$2 path=$3 auth=$4; shift 4
  local c0 c1 o0 o1 w0 w1 perf_pid="" f="$R/wrk-$label-$round.txt" origin; origin=$(pid_of nginx)
  c0=$(cpu_ticks "$@"); o0=$(cpu_ticks "$origin")
  if [ "${PERF:-0}" = 1 ] && [ "$label" = ward ]; then   # PERF=1: a profile of Ward's server during its run
    perf record -F 499 -g -o "$R/perf-ward-$round.data" -p "$1" -- sleep $((DUR - 1)) >/dev/null 2>&1 &
    perf_pid=$!
  fi
  # wrk's own CPU: the shell's children's times before and after (wrk is waited for).
  children_secs "$RUN/times0"; w0=$(cat "$RUN/times0.s"); read -r -a m0 < <(head -1 /proc/stat)
  WRK_PATH=$path WRK_HOST=$ORIGIN WRK_AUTH=$auth \
    wrk -t"$WRK_T" -c"$WRK_C" -d"${DUR}s" --timeout 5s -s "$C/req.lua" "http://127.0.0.1:$port" >"$f" 2>&1
  children_secs "$RUN/times1"; w1=$(cat "$RUN/times1.s"); c1=$(cpu_ticks "$@"); o1=$(cpu_ticks "$origin")
  read -r -a m1 < <(head -1 /proc/stat)
  # The whole machine (every process, ours or not): busy = all but idle and iowait.
  local mt=0 mi=0 i; for i in 1 2 3 4 5 6 7 8; do mt=$((mt + m1[i] - m0[i])); done; mi=$((m1[4] - m0[4] + m1[5] - m0[5]))
  [ -n "$perf_pid" ] && wait "$perf_pid"
  local line; line=$(grep '^RESULT' "$f" | sed 's/^RESULT //')
  printf 'wrk\t%s\t%s\t%s\tproxy_cpu_pct=%.0f\torigin_cpu_pct=%.0f\twrk_cpu_pct=%.0f\tmachine_busy_pct=%.0f\n' "$label" "$round" \
    "$(echo "$line" | tr ' ' '\t')" "$(echo "($c1-$c0)*100/$CLK/$DUR" | bc -l)" \
    "$(echo "($o1-$o0)*100/$CLK/$DUR" | bc -l)" "$(echo "($w1-$w0)*100/$DUR" | bc -l)" \
    "$(echo "($mt-$mi)*100*$(nproc)/$mt" | bc -l)" | tee -a "$R/raw.tsv"
  sleep 1
}
for round in $(seq 1 "$REPS"); do
  log "round $round"
  wrk_run direct    $P_NGINX  /1k.bin                 "" "$(pid_of nginx)"
  wrk_run squid     $P_SQUID  "http://$ORIGIN/1k.bin" "" "$(pid_of squid)"
  wrk_run tinyproxy $P_TINY   "http://$ORIGIN/1k.bin" "" "$(pid_of tinyproxy)"
  wrk_run ward      $P_WPROXY "http://$ORIGIN/1k.bin" "$AUTH" "$SRV"
  [ -n "$WARD_B" ] && wrk_run ward_b $P_WPROXY_B "http://$ORIGIN/1k.bin" "$AUTH_B" "$SRV_B"
done
WARD_CONFIG_DIR=$WB/ctl "$WARD" ctl logs web --limit 3 >"$R/ward-web-sample.txt" 2>&1
echo "== ward server RSS at the end: $(awk '/VmRSS/{print $2, $3}' /proc/$SRV/status)" | tee -a "$R/functional.txt"
[ -n "$WARD_B" ] && echo "== ward_b server RSS at the end: $(awk '/VmRSS/{print $2, $3}' /proc/$SRV_B/status)" | tee -a "$R/functional.txt"
cleanup

python3 - "$R/raw.tsv" <<'EOF' | tee "$R/summary.txt"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split("\t")
    label = parts[1]
    kv = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
    rows.setdefault(label, []).append(kv)
med = lambda label, key: statistics.median(float(r[key]) for r in rows[label])
print(f"{'path':<10} {'req/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7} {'non2xx':>7} {'cpu %':>6} {'nginx %':>7} {'wrk %':>6} {'all %':>6}")
for label in ("direct", "squid", "tinyproxy", "ward", "ward_b"):
    if label not in rows:
        continue
    print(f"{label:<10} {med(label, 'rps'):>10.0f} {med(label, 'p50_us')/1000:>8.2f} {med(label, 'p90_us')/1000:>8.2f} "
          f"{med(label, 'p99_us')/1000:>8.2f} {med(label, 'errors'):>7.0f} {med(label, 'non2xx'):>7.0f} "
          f"{med(label, 'proxy_cpu_pct'):>6.0f} {med(label, 'origin_cpu_pct'):>7.0f} {med(label, 'wrk_cpu_pct'):>6.0f} {med(label, 'machine_busy_pct'):>6.0f}")
if "ward" in rows:
    for peer in ("squid", "tinyproxy", "ward_b"):
        if peer in rows:
            print(f"ward / {peer}: {med('ward', 'rps') / med(peer, 'rps'):.2f}x requests/s, "
                  f"p99 {med('ward', 'p99_us') / med(peer, 'p99_us'):.2f}x of {peer}'s")
EOF
