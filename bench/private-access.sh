#!/usr/bin/env bash
# bench/private-access.sh: Ward's private-access data path, side by side with its peers, in one run.
#
#   1. bulk TCP (iperf3, one stream): direct, stunnel mTLS pair, dante SOCKS5 (proxychains4),
#      Ward agent+gateway through `ward agent forward` and through the agent's SOCKS5 (proxychains4)
#   2. new connection through an open tunnel (connect + GET 1 KiB + close, sequential):
#      direct nginx, haproxy, Ward forward (and dante / Ward SOCKS5 as extras)
#   3. idle tunnel memory: RSS of `ward server` (it embeds the gateway) before and after IDLE_N idle
#      `ward agent up` processes have connected, and the agents' own RSS; then the same with SYNTH_N
#      idle tunnels held by one process (idle_tunnels.py), for scale
#
# Rounds are interleaved (every path once per round), so a slow moment hits all paths alike.
# Everything listens on 127.0.0.1 only. Every process started here is recorded by PID, and exactly
# those PIDs (and their children) are terminated on exit. A watchdog ends the run after MAX_SECONDS.
#
# Usage (from the workspace root, after `cargo build --release -p ward`):
#   [REPS=3] [DUR=5] [BULK=1] [HOLD=0] [CONN_N=2000] [IDLE_N=100] [SYNTH_N=1000] [SYNTH_PARTS=4] [SYNTH_CONC=1] [DIAG=0] [BASE=/tmp/ward-bench] \
#     bash bench/private-access.sh
# SERVER_ENV / AGENT_ENV: extra environment (VAR=value ...) for the ward server and for the forward
# agent of the connection test, for experiments such as TOKIO_WORKER_THREADS=1.
# Tools: apt-get install -y iperf3 haproxy nginx dante-server stunnel4 proxychains4 jq bc
#        (plus openssl, gcc, python3, curl, ss, which are usually present)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WARD=${WARD_BIN:-$ROOT/target/release/ward}
CONNTEST_SRC=${CONNTEST_SRC:-/work/shared/bench/src/conntest.c}
BASE=${BASE:-${TMPDIR:-/tmp}/ward-bench}
REPS=${REPS:-3}; DUR=${DUR:-5}; CONN_N=${CONN_N:-2000}
IDLE_N=${IDLE_N:-100}; IDLE_SETTLE=${IDLE_SETTLE:-15}; SYNTH_N=${SYNTH_N:-1000}; SYNTH_PARTS=${SYNTH_PARTS:-4}; SYNTH_CONC=${SYNTH_CONC:-1}
BULK=${BULK:-1}   # 0: skip the bulk (iperf3) rows, for a quick latency-only run
DIAG=${DIAG:-0}   # 1: after the rounds, strace and perf the ward server during extra conntests (diagnostic)
MAX_SECONDS=${MAX_SECONDS:-2400}

# Ports: a block of their own, away from peers.sh (252xx) and Ward's defaults (7600/7601).
P_IPERF=26201 P_STS=26202 P_STC=26203 P_DANTE=26204 P_NGINX=26205 P_HAP=26206
P_WAPI=26210 P_WGW=26211 P_WFWD_IPERF=26212 P_WFWD_HTTP=26213 P_WSOCKS=26214 P_WHTTP=26215
ALL_PORTS="$P_IPERF $P_STS $P_STC $P_DANTE $P_NGINX $P_HAP $P_WAPI $P_WGW $P_WFWD_IPERF $P_WFWD_HTTP $P_WSOCKS $P_WHTTP"

C=$BASE/conf L=$BASE/logs R=$BASE/results RUN=$BASE/run PKI=$BASE/pki WWW=$BASE/www BIN=$BASE/bin WB=$BASE/ward
for t in iperf3 haproxy nginx danted stunnel4 proxychains4 jq bc openssl gcc python3 curl ss; do
  command -v "$t" >/dev/null || { echo "missing tool: $t (see the apt-get line at the top)"; exit 1; }
done
[ -x "$WARD" ] || { echo "no ward binary at $WARD: run 'cargo build --release -p ward' in $ROOT first"; exit 1; }
for p in $ALL_PORTS; do ss -ltnH "sport = :$p" | grep -q . && { echo "port $p is busy, abort"; exit 1; }; done

rm -rf "$WB" "$R" "$L"
mkdir -p "$C" "$L" "$R" "$RUN" "$PKI" "$WWW" "$BIN" "$BASE/tmp" "$WB/agents" "$WB/ctl"
# One run, one binary: run a private copy, so a rebuild during the run cannot mix two versions.
cp "$WARD" "$BIN/ward" || exit 1
WARD_SRC=$WARD WARD=$BIN/ward
chmod 755 "$BASE" "$WWW"; chmod 1777 "$L" "$RUN"   # nginx workers run as nobody
CLK=$(getconf CLK_TCK)
log(){ echo "[$(date +%T)] $*" | tee -a "$R/run.log"; }

# ------------------------------------------------------------------ process control
declare -a PIDS=()
start(){ # start NAME cmd... : background, foreground-mode daemon; PID recorded
  local name=$1; shift
  "$@" >"$L/$name.out" 2>&1 &
  local pid=$!; PIDS+=("$pid:$name"); echo "$pid" >"$RUN/$name.mypid"
  [ "${QUIET_START:-0}" = 1 ] || log "started $name pid=$pid"
}
pid_of(){ cat "$RUN/$1.mypid"; }
kids(){ ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }
stop_pids(){ # TERM the given PIDs (and their children), wait up to 5 s, then KILL
  local pid k all=()
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || continue
    all+=("$pid"); for k in $(kids "$pid"); do all+=("$k"); done
    kill -TERM "$pid" 2>/dev/null
  done
  sleep 0.2   # let parents stop their own children first, then TERM whatever is left of them
  for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  [ ${#all[@]} = 0 ] && return 0
  for _ in $(seq 1 50); do
    local alive=0; for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; log "KILL pid=$pid (ignored TERM)"; }; done
  return 0
}
cleanup(){
  trap - EXIT INT TERM
  local e pids=()
  for e in "${PIDS[@]}"; do pids+=("${e%%:*}"); done
  [ ${#pids[@]} -gt 0 ] && { log "stopping ${#pids[@]} processes started by this run"; stop_pids "${pids[@]}"; }
  PIDS=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# Watchdog: the whole run is bounded even if something hangs.
MAIN_PID=$$
start watchdog bash -c "sleep $MAX_SECONDS; echo 'watchdog: run exceeded ${MAX_SECONDS}s'; kill -TERM $MAIN_PID"

wait_port(){ for _ in $(seq 1 150); do ss -ltnH "sport = :$1" | grep -q 127.0.0.1 && return 0; sleep 0.1; done
             log "ERROR: port $1 not listening"; return 1; }
sys_cpu(){ awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
sys_busy(){ set -- $1 $2; echo "($3-$1)*100*$(nproc)/(($3-$1)+($4-$2))" | bc -l; }
cpu_ticks(){ local t=0 p k
  for p in "$@"; do for k in "$p" $(kids "$p"); do
    [ -r "/proc/$k/stat" ] && t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$k/stat")))
  done; done; echo $t; }
ctx_switches(){ # voluntary + involuntary context switches of all threads of PID (and its children)
  local t=0 p f
  for p in "$1" $(kids "$1"); do for f in /proc/"$p"/task/*/status; do
    t=$((t + $(awk '/ctxt_switches/{s+=$2} END{print s+0}' "$f" 2>/dev/null || echo 0)))
  done; done; echo "$t"; }
rss_kib(){ awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
anon_kib(){ awk '/^RssAnon:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
tunnels_up(){ ss -tnH state established "( sport = :$P_WGW )" | wc -l; }

# ------------------------------------------------------------------ machine and versions
{
  echo "date: $(date -Is)"; echo "kernel: $(uname -r)"
  echo "cpus: $(nproc) x $(lscpu | sed -n 's/^Model name: *//p')"; echo "lo mtu: $(cat /sys/class/net/lo/mtu)"
  echo "ward binary: $WARD_SRC, built $(date -r "$WARD_SRC" -Is), sha256 $(sha256sum "$WARD" | cut -c1-16) (run from a copy)"
  echo "ward: $("$WARD" --version); source tree at run time (the binary may be older): git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" log -1 --format=' %cI' 2>/dev/null)$([ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || echo ' + uncommitted changes')"
  iperf3 --version | head -1; haproxy -v | head -1; nginx -v 2>&1; danted -v
  stunnel4 -version 2>&1 | grep -E '^stunnel|Running'; openssl version
  echo "proxychains4 $(dpkg-query -W -f '${Version}' proxychains4 2>/dev/null)"
} >"$R/versions.txt" 2>&1
NEWER=$(find "$ROOT/crates" -name '*.rs' -newer "$WARD_SRC" 2>/dev/null | wc -l)
[ "$NEWER" -gt 0 ] && echo "WARNING: $NEWER source files are newer than the ward binary: it may not be the code in the tree (cargo build --release -p ward)" >>"$R/versions.txt"
cat "$R/versions.txt"

# ------------------------------------------------------------------ tools, PKI, content, configs
[ -x "$BIN/conntest" ] || gcc -O2 -Wall -o "$BIN/conntest" "$CONNTEST_SRC" || exit 1
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$WWW/1k.bin"
if [ ! -s "$PKI/client.crt" ]; then    # stunnel's mutual TLS: one CA, a server and a client cert, P-256
  ( cd "$PKI" || exit 1
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
    openssl req -x509 -new -key ca.key -subj /CN=ward-bench-ca -days 30 -out ca.crt \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    for n in server client; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $n.key
      openssl req -new -key $n.key -subj /CN=ward-bench-$n -out $n.csr
      if [ $n = server ]; then printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >$n.ext
      else printf 'subjectAltName=DNS:bench-client\nextendedKeyUsage=clientAuth\n' >$n.ext; fi
      openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile $n.ext -out $n.crt
    done ) >"$L/pki.log" 2>&1
fi

cat >"$C/nginx.conf" <<EOF
worker_processes 1;
pid $RUN/nginx.pid;
error_log $L/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nodelay on;
  client_body_temp_path $BASE/tmp/cb; proxy_temp_path $BASE/tmp/px; fastcgi_temp_path $BASE/tmp/fc;
  uwsgi_temp_path $BASE/tmp/uw; scgi_temp_path $BASE/tmp/sc;
  types { application/octet-stream bin; }
  server { listen 127.0.0.1:$P_NGINX; root $WWW; location / { } }
}
EOF
cat >"$C/haproxy.cfg" <<EOF
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen http_tcp
  bind 127.0.0.1:$P_HAP
  server origin 127.0.0.1:$P_NGINX
EOF
stunnel_conf(){ # side accept connect extra-lines
  printf 'foreground = yes\npid =\ndebug = info\noutput = %s\n%s\n[mtls]\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n' \
    "$L/stunnel-$1.log" "$4" "$2" "$3"
  printf 'cert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\nsslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n' \
    "$PKI/$1.crt" "$PKI/$1.key" "$PKI/ca.crt"
}
{ stunnel_conf server $P_STS $P_IPERF ""; echo "requireCert = yes"; } >"$C/stunnel-server.conf"
{ stunnel_conf client $P_STC $P_STS "client = yes"; echo "checkIP = 127.0.0.1"; } >"$C/stunnel-client.conf"
cat >"$C/danted.conf" <<EOF
logoutput: $L/danted.log
internal: 127.0.0.1 port = $P_DANTE
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.1/32 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.1/32 to: 127.0.0.1/32 command: connect }
EOF
proxychains_conf(){ printf 'strict_chain\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 %s\n' "$1"; }
proxychains_conf $P_DANTE  >"$C/proxychains-dante.conf"
proxychains_conf $P_WSOCKS >"$C/proxychains-ward.conf"

# ------------------------------------------------------------------ peers
start iperf3-server iperf3 -s -B 127.0.0.1 -p $P_IPERF;                          wait_port $P_IPERF || exit 1
start nginx nginx -e "$L/nginx-error.log" -c "$C/nginx.conf" -g 'daemon off;';   wait_port $P_NGINX || exit 1
start haproxy haproxy -db -f "$C/haproxy.cfg";                                    wait_port $P_HAP || exit 1
start stunnel-server stunnel4 "$C/stunnel-server.conf";                           wait_port $P_STS || exit 1
start stunnel-client stunnel4 "$C/stunnel-client.conf";                           wait_port $P_STC || exit 1
start danted danted -f "$C/danted.conf";                                          wait_port $P_DANTE || exit 1

# ------------------------------------------------------------------ Ward: server, policy, devices
PW="bench-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
API=http://127.0.0.1:$P_WAPI
wctl(){ WARD_CONFIG_DIR=$WB/ctl "$WARD" ctl "$@"; }
start ward-server env ${SERVER_ENV:-} WARD_BOOTSTRAP_PASSWORD="$PW" "$WARD" server --data-dir "$WB/data" \
  --listen 127.0.0.1:$P_WAPI --gateway-listen 127.0.0.1:$P_WGW
wait_port $P_WAPI || exit 1; wait_port $P_WGW || exit 1
SRV=$(pid_of ward-server)
for i in $(seq 1 30); do
  printf '%s\n' "$PW" | wctl --server "$API" login --tenant default --user admin --password-stdin >"$L/ctl-login.out" 2>&1 && break
  [ "$i" = 30 ] && { log "ERROR: cannot sign in to Ward"; cat "$L/ctl-login.out"; exit 1; }
  sleep 0.5
done
{ wctl user create alice
  wctl app create bench --address 127.0.0.1 --ports "$P_IPERF,$P_NGINX"
  wctl rule create --priority 10 --action allow --app bench --user alice
} >"$L/ctl-policy.out" 2>&1 || { log "ERROR: policy setup failed"; cat "$L/ctl-policy.out"; exit 1; }
enrol(){ # enrol NAME: a device of alice with its own state dir
  local dir=$WB/agents/$1 code
  code=$(wctl enroll create --user alice 2>>"$L/ctl-enrol.err" | tail -1) || return 1
  "$WARD" agent enroll --server "$API" --code "$code" --state-dir "$dir" >>"$L/agent-enrol.out" 2>&1
}
log "enrolling 3 data-path devices and $IDLE_N idle devices"
t0=$(date +%s.%N)
for n in fwd-iperf fwd-http socks $(seq -f 'idle-%03g' 1 "$IDLE_N"); do
  enrol "$n" || { log "ERROR: enrolment of $n failed"; tail -5 "$L/agent-enrol.out" "$L/ctl-enrol.err"; exit 1; }
done
log "enrolled $((IDLE_N + 3)) devices in $(echo "$(date +%s.%N)-$t0" | bc | xargs printf %.1f) s"

start ward-fwd-iperf "$WARD" agent forward 127.0.0.1:$P_WFWD_IPERF 127.0.0.1:$P_IPERF --state-dir "$WB/agents/fwd-iperf"
start ward-fwd-http env ${AGENT_ENV:-} "$WARD" agent forward 127.0.0.1:$P_WFWD_HTTP 127.0.0.1:$P_NGINX --state-dir "$WB/agents/fwd-http"
start ward-socks     "$WARD" agent up --state-dir "$WB/agents/socks" --socks 127.0.0.1:$P_WSOCKS --http 127.0.0.1:$P_WHTTP
for p in $P_WFWD_IPERF $P_WFWD_HTTP $P_WSOCKS; do wait_port "$p" || exit 1; done
FWD_I=$(pid_of ward-fwd-iperf) FWD_H=$(pid_of ward-fwd-http) WSOCKS=$(pid_of ward-socks)

# The gateway learns new devices from its next policy snapshot: retry the first connection.
retry_get(){ # label curl-args...
  for _ in $(seq 1 60); do
    [ "$(curl -s -m 3 -o /dev/null -w '%{http_code}' "${@:2}")" = 200 ] && { log "$1: first request OK"; return 0; }
    sleep 0.25
  done; log "ERROR: $1 never answered 200"; return 1; }
retry_get "ward forward"  "http://127.0.0.1:$P_WFWD_HTTP/1k.bin" || exit 1
retry_get "ward socks5"   --socks5 127.0.0.1:$P_WSOCKS "http://127.0.0.1:$P_NGINX/1k.bin" || exit 1
retry_get "dante socks5"  --socks5 127.0.0.1:$P_DANTE "http://127.0.0.1:$P_NGINX/1k.bin" || exit 1
retry_get "haproxy"       "http://127.0.0.1:$P_HAP/1k.bin" || exit 1
for _ in $(seq 1 40); do timeout 10 iperf3 -c 127.0.0.1 -p $P_WFWD_IPERF -t 1 >/dev/null 2>&1 && break; sleep 0.25; done

# ------------------------------------------------------------------ functional checks
{
  echo "== stunnel: a TLS 1.3 client without a certificate must be refused"
  echo x | timeout 5 openssl s_client -connect 127.0.0.1:$P_STS -tls1_3 -CAfile "$PKI/ca.crt" -quiet 2>&1 | grep -iE 'alert|error' | head -2
  echo "== stunnel: with the client certificate"
  timeout 5 openssl s_client -connect 127.0.0.1:$P_STS -tls1_3 -CAfile "$PKI/ca.crt" -cert "$PKI/client.crt" -key "$PKI/client.key" -brief </dev/null 2>&1 | grep -E 'Protocol|Ciphersuite' | head -2
  D=$WB/agents/fwd-iperf
  echo "== Ward gateway: without a device certificate must be refused"
  echo x | timeout 5 openssl s_client -connect 127.0.0.1:$P_WGW -tls1_3 -alpn h2 -CAfile "$D/gateway-ca.pem" -quiet 2>&1 | grep -iE 'alert|error' | head -2
  echo "== Ward gateway: with a device certificate (openssl's client offer; the agent is rustls)"
  timeout 5 openssl s_client -connect 127.0.0.1:$P_WGW -tls1_3 -alpn h2 -CAfile "$D/gateway-ca.pem" -cert "$D/device.crt" -key "$D/device.key" -brief </dev/null 2>&1 | grep -E 'Protocol|Ciphersuite|ALPN' | head -3
  echo "== Ward: a port the rules do not allow must be refused (SOCKS5 to 127.0.0.1:$P_HAP)"
  curl -s -m 5 -o /dev/null -w 'http=%{http_code} exit=' --socks5 127.0.0.1:$P_WSOCKS "http://127.0.0.1:$P_HAP/1k.bin"; echo $?
  echo "== Ward tunnels established at the gateway: $(tunnels_up)"
} >"$R/functional.txt" 2>&1
cat "$R/functional.txt"

# ------------------------------------------------------------------ 3. idle tunnel memory
# Measured before any bulk traffic: after bulk relays the allocator holds freed buffers that new
# tunnels could reuse without growing RSS, which would flatter Ward. The 3 data-path agents are
# already connected and have carried a request, so one-time costs (first TLS handshake, first
# tunnel, first relay) are in the baseline, not in the per-tunnel figure.
mem_sample(){ # label expected_tunnels : 3 samples, 1 s apart, server RSS median
  local s=() a=() i
  for i in 1 2 3; do s+=("$(rss_kib "$SRV")"); a+=("$(anon_kib "$SRV")"); sleep 1; done
  local rs an; rs=$(printf '%s\n' "${s[@]}" | sort -n | sed -n 2p); an=$(printf '%s\n' "${a[@]}" | sort -n | sed -n 2p)
  printf 'mem\t%s\t1\tserver_rss_kib=%s\tserver_anon_kib=%s\ttunnels=%s\texpected=%s\tsamples=%s\n' \
    "$1" "$rs" "$an" "$(tunnels_up)" "$2" "$(IFS=,; echo "${s[*]}")" | tee -a "$R/raw.tsv"
}
wait_tunnels(){ # n timeout_s
  for _ in $(seq 1 $(( $2 * 4 ))); do [ "$(tunnels_up)" -ge "$1" ] && return 0; sleep 0.25; done
  log "WARNING: only $(tunnels_up) of $1 tunnels established"; return 1; }
start_idle(){ # from to
  local i; for i in $(seq "$1" "$2"); do
    QUIET_START=1 start "$(printf 'idle-%03d' "$i")" "$WARD" agent up --state-dir "$WB/agents/$(printf 'idle-%03d' "$i")" \
      --socks 127.0.0.1:0 --http 127.0.0.1:0
    (( i % 10 == 0 )) && sleep 0.3    # do not start 100 TLS handshakes in the same instant
  done; log "started idle agents $1..$2"; }

BASE_T=$(tunnels_up)
sleep 3; mem_sample baseline "$BASE_T"
HALF=$(( IDLE_N / 2 ))
if [ "$HALF" -gt 0 ]; then
  start_idle 1 "$HALF"; wait_tunnels $((BASE_T + HALF)) 60; sleep "$IDLE_SETTLE"; mem_sample "idle_$HALF" $((BASE_T + HALF))
fi
start_idle $((HALF + 1)) "$IDLE_N"; wait_tunnels $((BASE_T + IDLE_N)) 60; sleep "$IDLE_SETTLE"
mem_sample "idle_$IDLE_N" $((BASE_T + IDLE_N))
IDLE_PIDS=(); for i in $(seq 1 "$IDLE_N"); do IDLE_PIDS+=("$(pid_of "$(printf 'idle-%03d' "$i")")"); done
ARSS=(); for p in "${IDLE_PIDS[@]}"; do ARSS+=("$(rss_kib "$p")"); done
printf 'agent_mem\tidle_agent\t1\t%s\n' "$(printf '%s\n' "${ARSS[@]}" | sort -n | awk '{v[NR]=$1; s+=$1} END {printf "median_rss_kib=%d\tmin_rss_kib=%d\tmax_rss_kib=%d\tn=%d\tsum_rss_kib=%d", v[int((NR+1)/2)], v[1], v[NR], NR, s}')" \
  | tee -a "$R/raw.tsv"
log "idle agents: $(grep -l 'tunnel connected' "$L"/idle-*.out 2>/dev/null | wc -l) of $IDLE_N logged 'tunnel connected'; $(cat "$L"/idle-*.out | grep -cE 'WARN|ERROR') WARN/ERROR lines"
stop_pids "${IDLE_PIDS[@]}"; log "stopped the idle agents"
sleep 3; mem_sample after_idle_stopped "$BASE_T"

# The same at a larger scale: SYNTH_N idle tunnels held by bench/idle_tunnels.py, which speaks what
# an idle agent does on its tunnel (TLS 1.3 with a device certificate, the HTTP/2 preface and
# settings, PING answers and a PING every 10 s), certificates round-robin over the idle devices.
# SYNTH_PARTS processes of SYNTH_N/SYNTH_PARTS tunnels each, handshakes one at a time (SYNTH_CONC),
# RSS sampled after each: the later steps give the marginal cost of an idle tunnel once the
# allocator's free memory from start-up is used up, free of one-time costs.
if [ "$SYNTH_N" -gt 0 ] && [ "$IDLE_N" -gt 0 ]; then   # needs the idle devices' certificates
  SH=$(( SYNTH_N / SYNTH_PARTS ))
  mem_sample before_synthetic "$BASE_T"
  for part in $(seq 1 "$SYNTH_PARTS"); do
    start "synthetic-$part" python3 "$HERE/idle_tunnels.py" 127.0.0.1 $P_WGW "$SH" 600 "$SYNTH_CONC" "$WB"/agents/idle-*
    for _ in $(seq 1 900); do grep -q '^READY' "$L/synthetic-$part.out" && break; sleep 0.2; done
    log "synthetic tunnels, part $part: $(grep '^READY' "$L/synthetic-$part.out" || echo 'not ready')"
    wait_tunnels $((BASE_T + part * SH)) 60; sleep "$IDLE_SETTLE"
    mem_sample "synthetic_$((part * SH))" $((BASE_T + part * SH))
  done
  stop_pids $(for part in $(seq 1 "$SYNTH_PARTS"); do pid_of "synthetic-$part"; done); log "stopped the synthetic tunnels"
  sleep 3; mem_sample after_synthetic_stopped "$BASE_T"
fi

# ------------------------------------------------------------------ 1. bulk throughput, 2. latency
iperf_run(){ # label port relay-pids(csv) [iperf-extra] -- [prefix...]
  local label=$1 port=$2 rp=$3 extra=$4; shift 5
  local pids; read -ra pids <<<"${rp//,/ }"
  local s0 s1 f="$R/iperf-$label-$round.json" p c0=() c1=() sides="" tot=0 i
  for p in "${pids[@]}"; do c0+=("$(cpu_ticks "$p")"); done; s0=$(sys_cpu)
  timeout $((DUR + 30)) "$@" iperf3 -c 127.0.0.1 -p "$port" -t "$DUR" $extra -J >"$f" 2>"$R/iperf-$label-$round.err"
  s1=$(sys_cpu); for p in "${pids[@]}"; do c1+=("$(cpu_ticks "$p")"); done
  for i in "${!pids[@]}"; do   # CPU of each relay process, % of one core (side1 = first PID given)
    sides+=$(printf '\tside%d_cpu_pct=%.0f' $((i + 1)) "$(echo "(${c1[$i]}-${c0[$i]})*100/$CLK/$DUR" | bc -l)")
    tot=$((tot + c1[i] - c0[i]))
  done
  local gbps hc rc
  gbps=$(jq -r '(.end.sum_received.bits_per_second // 0)/1e9' "$f" 2>/dev/null || echo 0)
  hc=$(jq -r '.end.cpu_utilization_percent.host_total // 0' "$f" 2>/dev/null || echo 0)
  rc=$(jq -r '.end.cpu_utilization_percent.remote_total // 0' "$f" 2>/dev/null || echo 0)
  printf 'iperf\t%s\t%s\tGbit_s=%.3f\trelay_cpu_pct=%.0f%s\tclient_cpu_pct=%.0f\tserver_cpu_pct=%.0f\tsys_busy_pct=%.0f\n' \
    "$label" "$round" "${gbps:-0}" "$(echo "$tot*100/$CLK/$DUR" | bc -l)" "$sides" "${hc:-0}" "${rc:-0}" "$(sys_busy "$s0" "$s1")" \
    | tee -a "$R/raw.tsv"
  sleep 1
}
conn_run(){ # label port relay-pids(csv) [prefix...]
  local label=$1 port=$2 rp=$3; shift 3
  local pids; read -ra pids <<<"${rp//,/ }"
  local c0=() c1=() x0=() x1=() out p i tot=0 sides=""
  for p in "${pids[@]}"; do c0+=("$(cpu_ticks "$p")"); x0+=("$(ctx_switches "$p")"); done
  out=$(timeout 300 "$@" "$BIN/conntest" 127.0.0.1 "$port" "$CONN_N" /1k.bin 127.0.0.1:$P_NGINX)
  for p in "${pids[@]}"; do c1+=("$(cpu_ticks "$p")"); x1+=("$(ctx_switches "$p")"); done
  for i in "${!pids[@]}"; do   # CPU time and context switches of each relay process per connection
    sides+=$(printf '\tside%d_cpu_us_per_conn=%.1f' $((i + 1)) "$(echo "(${c1[$i]}-${c0[$i]})*1000000/$CLK/$CONN_N" | bc -l)")
    sides+=$(printf '\tside%d_cs_per_conn=%.1f' $((i + 1)) "$(echo "(${x1[$i]}-${x0[$i]})/$CONN_N" | bc -l)")
    tot=$((tot + c1[i] - c0[i]))
  done
  printf 'conntest\t%s\t%s\t%s\trelay_cpu_us_per_conn=%.1f%s\n' "$label" "$round" "$(echo "${out#RESULT }" | tr ' ' '\t')" \
    "$(echo "$tot*1000000/$CLK/$CONN_N" | bc -l)" "$sides" | tee -a "$R/raw.tsv"
  sleep 1
}
PCD=(proxychains4 -q -f "$C/proxychains-dante.conf")
PCW=(proxychains4 -q -f "$C/proxychains-ward.conf")
STS=$(pid_of stunnel-server) STC=$(pid_of stunnel-client) DA=$(pid_of danted) HAP=$(pid_of haproxy)
if [ "${HOLD:-0}" = 1 ]; then   # keep everything running for manual measurements until $RUN/hold is removed
  touch "$RUN/hold"; log "holding: ward server pid $SRV, forward agent pid $FWD_H on port $P_WFWD_HTTP; rm $RUN/hold to go on"
  while [ -e "$RUN/hold" ]; do sleep 1; done
fi
for round in $(seq 1 "$REPS"); do
  log "round $round of $REPS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ "$BULK" = 1 ]; then
    iperf_run direct          $P_IPERF       ""             "" --
    iperf_run stunnel_mtls    $P_STC         "$STS,$STC"    "" --
    iperf_run dante_socks5    $P_IPERF       "$DA"          "" -- "${PCD[@]}"
    iperf_run ward_forward    $P_WFWD_IPERF  "$SRV,$FWD_I"  "" --
    iperf_run ward_socks5     $P_IPERF       "$SRV,$WSOCKS" "" -- "${PCW[@]}"
    iperf_run R_stunnel_mtls  $P_STC         "$STS,$STC"    -R --
    iperf_run R_ward_forward  $P_WFWD_IPERF  "$SRV,$FWD_I"  -R --
  fi
  conn_run seq_direct        $P_NGINX      ""
  conn_run seq_haproxy       $P_HAP        "$HAP"
  conn_run seq_ward_forward  $P_WFWD_HTTP  "$SRV,$FWD_H"
  conn_run seq_dante_socks5  $P_NGINX      "$DA"          "${PCD[@]}"
  conn_run seq_ward_socks5   $P_NGINX      "$SRV,$WSOCKS" "${PCW[@]}"
done
log "server RSS after the rounds: $(rss_kib "$SRV") KiB; tunnels: $(tunnels_up)"
if [ "$DIAG" = 1 ]; then   # diagnostics only (slow the gateway down; not part of the figures)
  round=diag
  if command -v strace >/dev/null; then   # system calls of the ward server per connection through the forward
    strace -f -c -o "$R/strace-gateway.txt" -p "$SRV" >"$L/strace.out" 2>&1 &
    ST_PID=$!; PIDS+=("$ST_PID:strace"); sleep 1
    out=$(timeout 300 "$BIN/conntest" 127.0.0.1 $P_WFWD_HTTP 500 /1k.bin 127.0.0.1:$P_NGINX)
    kill -INT "$ST_PID"; wait "$ST_PID"
    log "strace: 500 connections through the forward ($out); ward server system calls, per connection:"
    awk '$1 ~ /^[0-9.]+$/ && NF>=5 {n=$4; name=$NF; printf "  %-16s %7.2f per conn  (%s%% of syscall time)\n", name, n/500, $1}' \
      "$R/strace-gateway.txt" | sort -k2 -nr | head -15 | tee "$R/strace-gateway-per-conn.txt"
  fi
  if command -v perf >/dev/null; then   # where the server's CPU goes, by thread and by symbol
    perf record -F 999 -g -o "$R/perf-gateway.data" -p "$SRV,$FWD_H" -- sleep 4 >"$L/perf.out" 2>&1 &
    PERF_PID=$!; PIDS+=("$PERF_PID:perf"); sleep 0.5
    conn_run diag_perf_ward_forward $P_WFWD_HTTP "$SRV,$FWD_H"
    wait "$PERF_PID"
    perf report -i "$R/perf-gateway.data" --no-children -g none --sort dso,symbol --stdio 2>/dev/null | grep '%' | grep -v '^#' | sed 's/ *- *- *$//' | head -40 >"$R/perf-gateway-top.txt"
    perf report -i "$R/perf-gateway.data" --no-children -g none --sort comm --stdio 2>/dev/null | grep '%' | grep -v '^#' >"$R/perf-gateway-threads.txt"
    perf report -i "$R/perf-gateway.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep '%' | grep -v '^#' >"$R/perf-gateway-dso.txt"
    log "perf: by thread, by binary, top symbols (full lists in $R/perf-gateway-*.txt)"
    cat "$R/perf-gateway-threads.txt" "$R/perf-gateway-dso.txt"; head -15 "$R/perf-gateway-top.txt"
  fi
fi
log "stunnel: $(grep -m1 -o 'TLSv1.3 ciphersuite: [A-Z0-9_-]*' "$L/stunnel-server.log" 2>/dev/null)"
wctl logs access --limit 3 >"$R/ward-access-sample.txt" 2>&1
cleanup
python3 "$HERE/summarize.py" "$R/raw.tsv" "$IDLE_N" | tee "$R/summary.txt"
log "raw figures: $R/raw.tsv; logs: $L"
