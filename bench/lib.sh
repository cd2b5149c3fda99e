# Shell helpers the benchmark scripts share (bench/site.sh, bench/wire.sh, bench/tuner.sh,
# bench/dictionary.sh).
# Source it after `cd` to the repository; `cleanup` removes "$work" and the script's LOGS
# must be set before `stop_server` is called.

# On exit, stop this script's own background jobs that are still running (servers, RSS
# samplers, probes): `jobs -p` lists only children not yet waited for, so no process id
# that has been reaped (and could belong to someone else by now) is signalled.
cleanup() {
  local pid
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
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
# LAST_URL. Needs NGINX, LOGS and work.
run_nginx() { # name url probe
  local name=$1 url=$2 probe=$3
  "$NGINX" -p "$work/$name" -c "$work/$name/nginx.conf" -e "$LOGS/$name.log" >"$LOGS/$name.out" 2>&1 &
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
