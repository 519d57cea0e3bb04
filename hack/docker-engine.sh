#!/usr/bin/env bash
# Install, start and stop a Docker engine on a machine without systemd.
#
#   hack/docker-engine.sh install   install Debian's docker.io when no dockerd exists
#   hack/docker-engine.sh start     install if needed, start dockerd, wait for the socket
#   hack/docker-engine.sh stop      stop the dockerd this script started, and only it
#   hack/docker-engine.sh status    say whether an engine answers and who started it
#
# Every step is idempotent: 'start' leaves an engine that already answers alone (one
# started by someone else is theirs to stop), and 'stop' only signals the PID recorded
# by 'start', after checking that PID still belongs to a dockerd.
#
# Needs root (apt-get, dockerd). Pid file and log live in DOCKER_ENGINE_STATE_DIR.
set -euo pipefail

state_dir=${DOCKER_ENGINE_STATE_DIR:-/var/lib/sales-forecast-docker-engine}
pid_file="$state_dir/dockerd.pid"
log_file="$state_dir/dockerd.log"
socket=${DOCKER_ENGINE_SOCKET:-/var/run/docker.sock}
start_timeout=${DOCKER_ENGINE_START_TIMEOUT:-60}
stop_timeout=${DOCKER_ENGINE_STOP_TIMEOUT:-30}

say() { printf 'docker-engine: %s\n' "$*" >&2; }

engine_answers() {
  # Ask the engine itself over the socket: a socket file alone can be a stale leftover.
  [ -S "$socket" ] && docker -H "unix://$socket" version --format '{{.Server.Version}}' \
    >/dev/null 2>&1
}

recorded_pid() {
  # Print the recorded PID only while it is still a running dockerd: a PID left over
  # from an earlier boot may since have been given to an unrelated process.
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  printf '%s\n' "$pid"
}

install_engine() {
  if command -v dockerd >/dev/null 2>&1; then
    return 0
  fi
  say "no dockerd on PATH: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends docker.io iptables
}

start_engine() {
  if engine_answers; then
    say "an engine already answers on $socket; leaving it as it is"
    return 0
  fi
  install_engine
  mkdir -p "$state_dir"
  if [ -f "$pid_file" ] && ! recorded_pid >/dev/null; then
    # Left by a dockerd that was killed: dockerd would refuse to start while the
    # recorded PID belongs to any live process, and the number may have been reused.
    rm -f "$pid_file"
  fi

  # setsid detaches dockerd from this shell's session, so it outlives the caller.
  # --pidfile is dockerd's own: it refuses to start while that PID is alive.
  say "starting dockerd (log: $log_file)"
  setsid dockerd --host "unix://$socket" --pidfile "$pid_file" \
    </dev/null >>"$log_file" 2>&1 &

  local waited=0
  until engine_answers; do
    if [ "$waited" -ge "$start_timeout" ]; then
      say "dockerd did not answer on $socket within ${start_timeout}s;" \
        "its last log lines follow (full log: $log_file)"
      tail -n 20 "$log_file" >&2 || true
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd $(recorded_pid || echo '?') answers on $socket after ${waited}s"
}

stop_engine() {
  local pid
  if ! pid=$(recorded_pid); then
    say "no running dockerd recorded in $pid_file; nothing to stop"
    return 0
  fi

  say "stopping dockerd $pid"
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge "$stop_timeout" ]; then
      say "dockerd $pid still runs ${stop_timeout}s after SIGTERM; see $log_file"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd $pid stopped"
}

status_engine() {
  local pid
  if pid=$(recorded_pid); then
    say "dockerd $pid was started by this script"
  fi
  if engine_answers; then
    say "an engine answers on $socket"
  else
    say "no engine answers on $socket"
    return 1
  fi
}

case "${1:-}" in
  install) install_engine ;;
  start) start_engine ;;
  stop) stop_engine ;;
  status) status_engine ;;
  *)
    say "unknown command '${1:-}'; use one of: install, start, stop, status"
    exit 64
    ;;
esac
