#!/usr/bin/env bash
# A real single-node SLURM on this machine, for tests and trying the sbatch scripts.
#
#   slurm/local_cluster.sh start     # munged + slurmctld + slurmd, waits until the node is idle
#   eval "$(slurm/local_cluster.sh env)"   # then sbatch, squeue, sinfo, srun talk to it
#   slurm/local_cluster.sh status    # daemons and sinfo
#   slurm/local_cluster.sh stop      # cancels jobs, stops the daemons, removes the directory
#
# Installs nothing: `bash scripts/setup.sh` installs Debian's munge, slurmctld, slurmd and
# slurm-client. Everything (slurm.conf, munge key and socket, state, spool, daemon logs, pid
# files) lives in one private directory, ${MOPS_SLURM_DIR:-/tmp/mops-slurm}; nothing under /etc
# is touched and a system munge/SLURM, if any, is left alone (own socket, own ports
# ${MOPS_SLURM_PORT:-16817} and +1). The daemons are plain background processes (no systemd),
# run as root (SlurmUser=root), one node with this machine's CPUs (nproc) and memory (MemTotal of
# /proc/meminfo, what `free -m` shows; procps may be missing in containers).
# start and stop are idempotent: start on a running cluster does nothing, stop on none does nothing.
set -euo pipefail

DIR=${MOPS_SLURM_DIR:-/tmp/mops-slurm}
PORT=${MOPS_SLURM_PORT:-16817}
CONF=$DIR/slurm.conf
SOCKET=$DIR/munge/munge.socket   # unix socket paths are limited to 107 bytes: keep DIR short
NODE=$(hostname -s)
ME="slurm/local_cluster.sh"
MARKER=.mops-local-cluster

die() { echo "$ME: $*" >&2; exit 1; }

# pid of a daemon if its pid file names a live process, else nothing.
pid_of() {
  local file=$DIR/run/$1.pid
  [ -s "$file" ] || return 0
  local pid; pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# The last lines of the daemons' logs, for error messages.
show_logs() {
  local log
  for log in "$DIR"/log/*.log; do
    [ -f "$log" ] || continue
    echo "--- last lines of $log:" >&2
    tail -n 15 "$log" >&2
  done
}

memory_mb() { awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo; }

node_state() { SLURM_CONF=$CONF sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true; }

check_tools() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as SlurmUser=root): sudo $ME $*"
  local tool
  for tool in munged mungekey slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$tool" >/dev/null ||
      die "'$tool' not found: run 'bash scripts/setup.sh' (installs munge slurmctld slurmd slurm-client)"
  done
}

write_config() {
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(memory_mb)
  cat >"$CONF" <<EOF
# Written by $ME: a single-node cluster for tests. Removed by '$ME stop'.
# Daemons and jobs run as root; munge on its own socket; no cgroups (containers have none).
ClusterName=mopslocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Reject at submit what this one node can never run (e.g. --nodes=2) instead of queueing it.
EnforcePartLimits=ALL
# The node is what nproc and /proc/meminfo say; slurmd keeps it up if its own count differs.
SlurmdParameters=config_overrides
# Generous: a busy 2-core machine must not mark its only node down.
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  check_tools start
  if [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ] && [ -n "$(pid_of munged)" ]; then
    echo "$ME: already running ($CONF)"; return 0
  fi
  stop quiet   # a half-started or crashed cluster: clear it first
  if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    die "$DIR exists and is not this script's: set MOPS_SLURM_DIR to a new directory"
  fi
  local port
  for port in "$PORT" "$((PORT + 1))"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is in use (another SLURM?): choose free ports with MOPS_SLURM_PORT=N (uses N and N+1)"
    fi
  done
  mkdir -p "$DIR"/{munge,state,spool,run,log}
  touch "$DIR/$MARKER"   # stop removes only a directory with this file in it
  chmod 755 "$DIR" "$DIR/munge"   # munged wants its socket's directory searchable by all
  write_config

  # munge: a fresh key of our own (never the system's), our own socket.
  [ -s "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key"
  munged --socket="$SOCKET" --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
    --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" </dev/null ||
    { show_logs; die "munged did not start (log above)"; }
  munge -n -S "$SOCKET" | unmunge -S "$SOCKET" >/dev/null ||
    { show_logs; die "munge does not work: a credential could not be decoded (log above)"; }

  # Both daemons fork into the background; their output goes to their logs in $DIR/log.
  slurmctld -f "$CONF" -c </dev/null >>"$DIR/log/slurmctld.stdout" 2>&1 ||
    { show_logs; die "slurmctld did not start (log above)"; }
  slurmd -f "$CONF" -N "$NODE" </dev/null >>"$DIR/log/slurmd.stdout" 2>&1 ||
    { show_logs; die "slurmd did not start (log above)"; }

  # Wait until the node is up and idle.
  local state=""
  for _ in $(seq 1 60); do
    state=$(node_state)
    case "$state" in idle*|mix*|alloc*) break ;; esac
    if [ -z "$(pid_of slurmctld)" ] || [ -z "$(pid_of slurmd)" ]; then
      show_logs; stop quiet; die "a SLURM daemon exited during start (logs above)"
    fi
    sleep 1
  done
  case "$state" in
    idle*|mix*|alloc*) ;;
    *) show_logs; stop quiet
       die "node $NODE not idle after 60 s (state '${state:-no answer from slurmctld}'; logs above)" ;;
  esac
  echo "$ME: node $NODE idle ($(nproc) CPUs, $(memory_mb) MB); use: export SLURM_CONF=$CONF"
}

# Kill one daemon by its pid file, politely first.
stop_daemon() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  [ -f "$DIR/$MARKER" ] || { [ "${1:-}" = quiet ] || echo "$ME: not running"; return 0; }
  [ "$(id -u)" -eq 0 ] || die "must run as root to stop the daemons: sudo $ME stop"
  # Jobs first, so no slurmstepd (each job's step daemon) outlives slurmd.
  if [ -n "$(pid_of slurmctld)" ]; then
    SLURM_CONF=$CONF scancel --full --quiet --partition=local 2>/dev/null || true
    for _ in $(seq 1 30); do
      [ -z "$(SLURM_CONF=$CONF squeue -h -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  # Step daemons of killed jobs hold a socket in the spool directory; wait for them to go.
  for _ in $(seq 1 20); do
    compgen -G "$DIR/spool/${NODE}_*" >/dev/null || break
    sleep 0.5
  done
  if compgen -G "$DIR/spool/${NODE}_*" >/dev/null; then
    # Only when slurmctld had died with jobs running (nothing could cancel them).
    echo "$ME: warning: job steps still hold sockets in $DIR/spool; their slurmstepd processes" \
         "(ps -eo pid,args | grep slurmstepd) may still run: kill them by pid" >&2
  fi
  rm -rf "$DIR"
  [ "${1:-}" = quiet ] || echo "$ME: stopped"
}

status() {
  local name pid rc=0
  for name in munged slurmctld slurmd; do
    pid=$(pid_of "$name")
    if [ -n "$pid" ]; then echo "$name: running (pid $pid)"; else echo "$name: not running"; rc=1; fi
  done
  if [ "$rc" -eq 0 ]; then SLURM_CONF=$CONF sinfo -N -l; echo "SLURM_CONF=$CONF"; fi
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $ME start|stop|status|env" >&2; exit 2 ;;
esac
