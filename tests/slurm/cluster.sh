#!/usr/bin/env bash
# A real one-node SLURM cluster from Debian 12's packages, for the `slurm` test group and benchmarks/slurm_overhead.py.
#
#   tests/slurm/cluster.sh start    # install what is missing, start munged, MariaDB, slurmdbd, slurmctld, slurmd
#   tests/slurm/cluster.sh status   # which daemons run; sinfo; exit 1 unless all are up and the node answers
#   tests/slurm/cluster.sh stop     # cancel the cluster's jobs, stop exactly the daemons `start` started
#   tests/slurm/cluster.sh clean    # stop, then remove the state folder
#   tests/slurm/cluster.sh env      # the line to source: export SLURM_CONF=...
#
# Runs as root on a machine without systemd (CI's container): every daemon is started by hand with its pid file,
# socket, spool and log inside one state folder, $EVALKIT_SLURM_STATE (default tests/slurm/state, git-ignored),
# so `stop` finds them all and `clean` leaves nothing behind. Client commands (sbatch, squeue, sacct, ...) find the
# cluster through SLURM_CONF=<state>/etc/slurm.conf (`eval "$(tests/slurm/cluster.sh env)"`); /etc/slurm and
# /etc/munge are not touched.
#
# Configuration: slurm-wlm 22.05 (bookworm). One node named after this host (`hostname -s`, address 127.0.0.1)
# with `nproc` CPUs and the machine's memory less 1 GiB, one partition `debug`; no cgroups
# (proctrack/linuxproc, task/none, jobacct_gather/linux); select/cons_tres with CR_CPU; munge authentication on
# a private key and socket. `sacct` needs accounting storage: slurm.conf(5) of 22.05 accepts only
# accounting_storage/none or accounting_storage/slurmdbd, and slurmdbd stores into MySQL/MariaDB, so a private
# MariaDB (Debian's mariadb-server, its own datadir, 127.0.0.1 only) backs slurmdbd. (`sacct --completion` can
# read a jobcomp/filetxt log without a database, but submitit follows its jobs with plain `sacct`, and a job
# completion log has no requeue history.) Ports: $EVALKIT_SLURM_PORT (default 6817) for slurmctld, +1 slurmd,
# +2 slurmdbd, +3 MariaDB. KillWait=5 (SIGTERM -> SIGKILL at a time limit), MinJobAge=600 (ended jobs stay in
# squeue's view for ten minutes), cred_expire=10 (a requeued job waits this long before it may start again;
# SLURM's default is 120 s).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${EVALKIT_SLURM_STATE:-$HERE/state}"
PORT="${EVALKIT_SLURM_PORT:-6817}"
CLUSTER="evalkit"
CONF="$STATE/etc/slurm.conf"
MUNGE_SOCKET="$STATE/munge/munge.socket.2"
DB_SOCKET="$STATE/mysql/mysqld.sock"
DB_PASS="evalkit-slurm"       # the accounting database's user, reachable from 127.0.0.1 only
NODE="$(hostname -s)"
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server mariadb-client)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)     # start order; stop goes in reverse

export SLURM_CONF="$CONF"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
STARTING=""
die() {   # a failed start stops whatever it had started
    log "error: $*"
    if [[ -n "$STARTING" ]]; then STARTING="" && cmd_stop quiet; fi
    exit 1
}

pid_of() {   # pid of daemon $1 if its pid file names a live process running that program, else nothing
    local f="$STATE/run/$1.pid" pid exe
    [[ -s "$f" ]] || return 0
    pid="$(tr -dc '0-9' < "$f")"
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 0
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    case "$(basename "${exe% (deleted)}")" in
        "$1"|"$1"-wlm) echo "$pid" ;;
    esac
}

wait_for() {   # wait_for SECONDS WHAT CMD...: run CMD every 0.5 s until it succeeds or SECONDS have passed
    local end=$((SECONDS + $1))
    shift 2
    while ((SECONDS < end)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

tail_log() { [[ -f "$STATE/log/$1.log" ]] && tail -n 25 "$STATE/log/$1.log" | sed "s/^/  $1.log: /" >&2 || true; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing ${missing[*]} (apt-get)"
    # without systemd, package scripts would start the packaged daemons with their default configuration:
    # forbid that for the duration of the install (Debian's policy-rc.d interface), unless a policy exists
    local policy=/usr/sbin/policy-rc.d made=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; } || rc=$?
    [[ -n "$made" ]] && rm -f "$policy"
    [[ $rc -eq 0 ]] || die "apt-get install ${missing[*]} failed (status $rc)"
}

write_configs() {
    local cpus mem_mb
    cpus="$(nproc)"
    mem_mb=$(( $(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    cat > "$CONF" <<EOF
# written by tests/slurm/cluster.sh: a one-node test cluster (no cgroups)
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
PlugStackConfig=$STATE/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
KillWait=5
MinJobAge=600
InactiveLimit=0
OverTimeLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
# connections to slurmdbd authenticate through this munge socket (slurm.conf(5): AccountingStoragePass)
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    : > "$STATE/etc/plugstack.conf"
    # slurmdbd reads slurmdbd.conf next to $SLURM_CONF; it must be private to SlurmUser
    (umask 077 && cat > "$STATE/etc/slurmdbd.conf" <<EOF
# written by tests/slurm/cluster.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 3))
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
    )
}

start_munged() {
    mungekey --create --keyfile="$STATE/etc/munge.key" --force
    chmod 400 "$STATE/etc/munge.key"
    # --force: munged also refuses a group-writable parent directory (a checkout made with umask 002); the key's
    # folder is private and the socket's world-readable, as munged wants them
    munged --key-file="$STATE/etc/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$STATE/run/munged.pid" \
        --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed" --force \
        || { tail_log munged; die "munged did not start"; }
    wait_for 10 munge sh -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'" \
        || { tail_log munged; die "munged does not answer on $MUNGE_SOCKET"; }
}

sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot -e "$1"; }

start_mariadb() {
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql/data" --skip-test-db \
        --auth-root-authentication-method=socket > "$STATE/log/mariadb-install.log" 2>&1 \
        || { tail_log mariadb-install; die "mariadb-install-db failed"; }
    # innodb_lock_wait_timeout as SLURM's accounting guide recommends (900); its 4 GB buffer pool is more than a
    # test cluster's few jobs need (slurmdbd logs that 64M is not the recommended value, and runs)
    setsid mariadbd --no-defaults --user=root --datadir="$STATE/mysql/data" --socket="$DB_SOCKET" \
        --port=$((PORT + 3)) --bind-address=127.0.0.1 --pid-file="$STATE/run/mariadbd.pid" \
        --log-error="$STATE/log/mariadbd.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=64M \
        --innodb-lock-wait-timeout=900 --max-connections=50 < /dev/null > /dev/null 2>&1 &
    local pid=$!
    wait_for 60 mariadb sh -c "kill -0 $pid 2>/dev/null || exit 0; mariadb-admin --no-defaults \
        --socket='$DB_SOCKET' -uroot ping" && kill -0 "$pid" 2>/dev/null \
        || { tail_log mariadbd; die "MariaDB did not start"; }
    wait_for 10 "mariadb pid file" test -s "$STATE/run/mariadbd.pid"
    sql "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
         CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm() {
    slurmdbd || { tail_log slurmdbd; die "slurmdbd did not start"; }
    wait_for 60 slurmdbd sacctmgr -n list cluster || { tail_log slurmdbd; die "slurmdbd does not answer"; }
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" > /dev/null
    fi
    slurmctld -f "$CONF" || { tail_log slurmctld; die "slurmctld did not start"; }
    wait_for 30 slurmctld scontrol ping || { tail_log slurmctld; die "slurmctld does not answer"; }
    slurmd -f "$CONF" || { tail_log slurmd; die "slurmd did not start"; }
    wait_for 60 "node idle" sh -c "sinfo -h -N -n '$NODE' -o %T | grep -qx idle" \
        || { sinfo -N >&2 || true; tail_log slurmd; tail_log slurmctld; die "node $NODE did not become idle"; }
}

all_up() {
    local d
    for d in "${DAEMONS[@]}"; do [[ -n "$(pid_of "$d")" ]] || return 1; done
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (the daemons run as root; this is a test cluster)"
    if all_up && sinfo -h >/dev/null 2>&1; then
        log "already running (state $STATE)"
        return 0
    fi
    cmd_stop quiet
    install_packages
    STARTING=1
    rm -rf "$STATE"
    mkdir -p "$STATE"/{etc,log,run,munge,mysql,spool/ctld,spool/d}
    chmod 700 "$STATE/etc"
    chmod 755 "$STATE" "$STATE/munge"   # munged: every user must reach its socket
    write_configs
    start_munged
    start_mariadb
    start_slurm
    STARTING=""
    log "up: node $NODE idle, $(nproc) CPUs; state in $STATE"
    log "use it with: export SLURM_CONF=$CONF"
}

stop_daemon() {   # TERM, wait up to 30 s, then KILL
    local pid i
    pid="$(pid_of "$1")"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        [[ -d "/proc/$pid" ]] || { [[ "${2:-}" == quiet ]] || log "stopped $1 (pid $pid)"; return 0; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    log "killed $1 (pid $pid): it did not stop within 30 s of SIGTERM"
}

cmd_stop() {
    if [[ -n "$(pid_of slurmctld)" ]]; then   # jobs first: their slurmstepd processes belong to this cluster
        local jobs
        jobs="$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')"
        if [[ -n "${jobs// /}" ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 30 "jobs to end" sh -c '[ -z "$(squeue -h -t R,CG -o %i)" ]' \
                || log "jobs still running after scancel: $(squeue -h -o '%i %T' | tr '\n' ' ')"
        fi
    fi
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[$i]}" "${1:-}"; done
}

cmd_status() {
    local d pid rc=0
    for d in "${DAEMONS[@]}"; do
        pid="$(pid_of "$d")"
        if [[ -n "$pid" ]]; then
            printf '%-10s running (pid %s)\n' "$d" "$pid"
        else
            printf '%-10s not running\n' "$d"
            rc=1
        fi
    done
    if [[ $rc -eq 0 ]]; then sinfo -N || rc=1; fi
    return $rc
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    clean) cmd_stop && rm -rf "$STATE" ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|clean|env" >&2; exit 2 ;;
esac
