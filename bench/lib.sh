# Shell helpers the benchmark scripts share (bench/site.sh, bench/wire.sh, bench/tuner.sh,
# bench/h2.sh, bench/dictionary.sh).
# Source it after `cd` to the repository; `cleanup` removes "$work" and the script's LOGS
# must be set before `stop_server` is called.

# On exit, stop this script's own background jobs that are still running (servers, RSS
# samplers, probes): `jobs -p` lists only children not yet waited for, so no process id
# that has been reaped (and could belong to someone else by now) is signalled. Then remove
# the CPU cgroups `cpu_cgroup_new` made (empty once their servers are reaped).
cleanup() {
  local pid
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cpu_cgroups_remove
  rm -rf "$work"
}

# CPU cgroups: a server held to a CPU quota (CPU_QUOTA of bench/tuner.sh and bench/h2.sh)
# runs in a cgroup of its own, made under the script's own cgroup, so its load generator
# (left in the script's cgroup) keeps the rest of the machine. Found at run time: cgroup v2 when a cgroup2 mount
# offers the cpu controller, else the v1 cpu controller's mount. A process joins its cgroup
# from its first instruction through `cpu_cgroup_exec`, before it reads how many CPUs it
# has (std's available_parallelism reads the quota of its own cgroup).
CGROUPS=()
# Sets CG_VERSION (v1 or v2) and CG_PARENT (the directory new cgroups go in), or prints why
# there is none and returns 1.
cpu_cgroup_find() {
  local mnt own
  CG_VERSION='' CG_PARENT=''
  mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
  if [ -n "$mnt" ] && grep -qw cpu "$mnt/cgroup.controllers" 2>/dev/null; then
    # v2 lets a cgroup with processes in it have no controller-enabled children (the root
    # excepted), and the script's own cgroup has the script in it: the children go under
    # the mount's root, whose subtree must offer cpu.
    CG_VERSION=v2 CG_PARENT=$mnt
    if ! grep -qw cpu "$mnt/cgroup.subtree_control" && ! echo +cpu >"$mnt/cgroup.subtree_control" 2>/dev/null; then
      echo "cgroup v2 at $mnt: cannot enable the cpu controller for its children (cgroup.subtree_control)" >&2
      return 1
    fi
  else
    mnt=$(awk '$3 == "cgroup" && ("," $4 ",") ~ /,cpu,/ { print $2; exit }' /proc/self/mounts)
    if [ -z "$mnt" ] || [ ! -e "$mnt/cpu.cfs_quota_us" ]; then
      echo "no cgroup with the cpu controller: neither a cgroup2 mount offering cpu nor a v1 cpu mount (/proc/self/mounts)" >&2
      return 1
    fi
    own=$(awk -F: '("," $2 ",") ~ /,cpu,/ { print $3; exit }' /proc/self/cgroup)
    CG_VERSION=v1 CG_PARENT=$mnt${own%/}
  fi
  if [ ! -w "$CG_PARENT" ]; then
    echo "cgroup $CG_VERSION: $CG_PARENT is not writable (run as root, with the cgroup filesystem mounted read-write)" >&2
    return 1
  fi
}

# Makes cgroup NAME (unique to this script's process) under CG_PARENT with a quota of CPUS
# (0.5: half a CPU) per PERIOD_US, and its weight WEIGHT times the default (1: unchanged);
# the directory in LAST_CGROUP.
cpu_cgroup_new() { # name cpus period_us weight
  local dir=$CG_PARENT/leanserve-bench.$$.$1 quota
  quota=$(awk -v c="$2" -v p="$3" 'BEGIN { printf "%d", c * p }')
  mkdir "$dir"
  CGROUPS+=("$dir")
  if [ "$CG_VERSION" = v2 ]; then
    echo "$quota $3" >"$dir/cpu.max"
    awk -v w="$4" 'BEGIN { w = int(100 * w); print (w > 10000 ? 10000 : w < 1 ? 1 : w) }' >"$dir/cpu.weight"
  else
    echo "$3" >"$dir/cpu.cfs_period_us"
    echo "$quota" >"$dir/cpu.cfs_quota_us"
    awk -v w="$4" 'BEGIN { w = int(1024 * w); print (w < 2 ? 2 : w) }' >"$dir/cpu.shares"
  fi
  # shellcheck disable=SC2034 # read by the caller
  LAST_CGROUP=$dir
}

# The words that run a command inside cgroup DIR from its first instruction, in CG_EXEC: a
# shell writes its own pid to the cgroup, then becomes the command (same pid, so `$!` of
# `env ... "${CG_EXEC[@]}" server &` stays the server's). Without DIR, no words.
cpu_cgroup_exec_words() { # dir
  # shellcheck disable=SC2034 # read by the caller
  CG_EXEC=()
  # shellcheck disable=SC2016,SC2034 # $$ and $@ belong to the inner shell
  if [ -n "$1" ]; then CG_EXEC=(sh -c 'echo $$ >"$0" && exec "$@"' "$1/cgroup.procs"); fi
}

# "periods throttled throttled_ms" of cgroup DIR so far (cpu.stat; zeros without DIR).
cpu_cgroup_throttling() { # dir
  if [ -z "$1" ]; then echo "0 0 0"; return; fi
  awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 }
       $1 == "throttled_time" { ms = $2 / 1e6 } $1 == "throttled_usec" { ms = $2 / 1e3 }
       END { printf "%d %d %.0f\n", p, t, ms }' "$1/cpu.stat"
}

# Removes the cgroups made by cpu_cgroup_new; a cgroup still holding a process (it has not
# been reaped yet) gets a few tries, then a message naming it.
cpu_cgroups_remove() {
  local dir _
  for dir in "${CGROUPS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      rmdir "$dir" 2>/dev/null && break
      [ -d "$dir" ] || break
      sleep 0.2
    done
    if [ -d "$dir" ]; then echo "could not remove cgroup $dir (processes: $(tr '\n' ' ' <"$dir/cgroup.procs"))" >&2; fi
  done
  CGROUPS=()
}

# Stops a server: SIGTERM, then its exit status (logged; a server that died on its own
# before this is reported as such). Reports collect in EXITS, printed under the tables.
EXITS=""
stop_server() { # name pid
  local name=$1 pid=$2 rc=0
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || rc=$?
    echo "$name had exited on its own (status $rc) before it was stopped; see $LOGS/$name.log" >&2
    EXITS+="- $name exited on its own during the run, status $rc ($LOGS/$name.log)"$'\n'
    return
  fi
  kill "$pid"
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "$name exited with status $rc when stopped" >&2
    EXITS+="- $name exited with status $rc when stopped ($LOGS/$name.log)"$'\n'
  fi
}

json_get() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); [d := d[k] for k in sys.argv[2:]]; print(d)' "$@"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# nginx (Debian's nginx-light) serving ROOT on a free loopback port as bench/wire.sh and
# bench/dictionary.sh compare against it: in the foreground (daemon off) with its own prefix
# in "$work", WORKERS workers, sendfile, gzip on the fly at level 6 (gzip_vary, from MIN bytes,
# html and the text types). Started as root it runs its workers as root too (`user root;`):
# /root, where rustup keeps the docs, is not traversable by www-data. Up once PROBE (a path)
# answers; the master's pid in LAST_PID (its workers are its children), its URL in LAST_URL.
# Needs NGINX, WORKERS, MIN, LOGS and work.
start_nginx() { # name root probe
  local name=$1 root=$2 probe=$3 port user=""
  [ "$(id -u)" = 0 ] && user="user root root;"
  port=$(free_port)
  mkdir -p "$work/$name"
  cat >"$work/$name/nginx.conf" <<CONF
$user
worker_processes $WORKERS;
daemon off;
pid $work/$name/nginx.pid;
error_log $LOGS/$name.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  types { text/markdown md; application/json map; text/csv csv; application/javascript mjs; }
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  gzip on;
  gzip_comp_level 6;
  gzip_vary on;
  gzip_min_length $MIN;
  gzip_types text/css application/javascript text/javascript application/json image/svg+xml
             text/xml application/xml text/plain text/markdown text/csv;
  client_body_temp_path $work/$name/body;
  proxy_temp_path $work/$name/proxy;
  fastcgi_temp_path $work/$name/fastcgi;
  uwsgi_temp_path $work/$name/uwsgi;
  scgi_temp_path $work/$name/scgi;
  server { listen 127.0.0.1:$port; root $root; }
}
CONF
  run_nginx "$name" "http://127.0.0.1:$port" "$probe"
}

# Starts the nginx whose configuration is "$work/NAME/nginx.conf" and waits until URL PROBE
# answers (curl -k: a self-signed certificate is fine); the master's pid in LAST_PID, URL in
# LAST_URL. With CGROUP (a cpu_cgroup_new directory) the master joins it before its first
# instruction and its workers are forked there. Needs NGINX, LOGS and work.
run_nginx() { # name url probe [cgroup]
  local name=$1 url=$2 probe=$3 CG_EXEC
  cpu_cgroup_exec_words "${4:-}"
  "${CG_EXEC[@]}" "$NGINX" -p "$work/$name" -c "$work/$name/nginx.conf" -e "$LOGS/$name.log" >"$LOGS/$name.out" 2>&1 &
  LAST_PID=$!
  LAST_URL=$url
  for _ in $(seq 1 100); do
    curl -fsk -o /dev/null "$LAST_URL$probe" && return 0
    kill -0 "$LAST_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not come up; see $LOGS/$name.log" >&2
  exit 1
}
