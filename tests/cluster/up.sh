#!/usr/bin/env bash
# Bring up a real one-node SLURM cluster on this machine for the cluster tests:
# munge -> MariaDB -> slurmdbd -> slurmctld -> slurmd, with partitions `cpu` (default)
# and `gpu`, and a `gpu` GRES backed by a placeholder file so that GPU jobs schedule.
#
# Run as root (Debian 12 packages). Idempotent: a second run only checks that every
# daemon it started is still alive and that the node is idle. Every daemon runs in the
# foreground under setsid, so the PID recorded in $STATE/pids is the daemon itself;
# tests/cluster/down.sh stops exactly those PIDs.
#
# Environment: VNAS_SLURM_STATE (default /tmp/vnas-slurm), VNAS_SLURM_TIMEOUT (seconds
# to wait for each daemon and for the node to be idle, default 90).
set -euo pipefail

STATE=${VNAS_SLURM_STATE:-/tmp/vnas-slurm}
TIMEOUT=${VNAS_SLURM_TIMEOUT:-90}
CLUSTER=vnas
# The account jobs are charged to; profiles/slurm/config.yaml names the same one.
ACCOUNT=vnas
PACKAGES=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
MYSQL_SOCKET=/run/mysqld/mysqld.sock
T0=$SECONDS

log() { echo "up.sh: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages and starts daemons)"

# ---------------------------------------------------------------- packages
install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing ${missing[*]}"
    # Keep the packages' init scripts from starting daemons we would not own.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local apt=(apt-get install -y -q --no-install-recommends "${missing[@]}")
    # Update the package lists once, only when they are missing or stale.
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$STATE/log/apt.log" 2>&1; then
        log "apt-get install failed; running apt-get update once and retrying"
        apt-get update -q >>"$STATE/log/apt.log" 2>&1 || {
            tail -20 "$STATE/log/apt.log" >&2
            die "apt-get update failed (log: $STATE/log/apt.log)"
        }
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$STATE/log/apt.log" 2>&1 || {
            tail -20 "$STATE/log/apt.log" >&2
            die "apt-get install failed (log: $STATE/log/apt.log)"
        }
    fi
    log "packages installed in $((SECONDS - T0)) s"
}

# ---------------------------------------------------------------- daemons
# is_running NAME: the daemon we recorded for NAME is alive.
is_running() {
    local f="$STATE/pids/$1.pid" pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against PID reuse: the process must still be the program we started.
    [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$2"* ]]
}

# start NAME PROGRAM CMD...: start CMD in the foreground of its own session, record PID.
start() {
    local name=$1 prog=$2
    shift 2
    if is_running "$name" "$prog"; then
        log "$name already running (pid $(<"$STATE/pids/$name.pid"))"
        return 0
    fi
    local other
    other=$(pgrep -x "$(basename "$prog")" || true)
    [[ -z $other ]] || die "a $prog not started by up.sh is running (pid $other); stop it first"
    setsid "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name.pid"
    log "started $name (pid $!)"
}

# stop NAME PROGRAM: stop a daemon we started (used when its config changed).
stop() {
    is_running "$1" "$2" || return 0
    local pid
    pid=$(<"$STATE/pids/$1.pid")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    rm -f "$STATE/pids/$1.pid"
    log "stopped $1 to restart it (config changed)"
}

# wait_for NAME WHAT LOGFILE CMD...: poll CMD until it succeeds; fail early, with
# LOGFILE's tail, when daemon NAME exits or TIMEOUT passes.
wait_for() {
    local name=$1 what=$2 logfile=$3
    shift 3
    local deadline=$((SECONDS + TIMEOUT)) why=""
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$(<"$STATE/pids/$name.pid")" 2>/dev/null; then
            why="$name exited"
        elif ((SECONDS > deadline)); then
            why="timed out after ${TIMEOUT}s"
        fi
        if [[ -n $why ]]; then
            log "$why waiting for $what; last lines of $logfile:"
            tail -30 "$logfile" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

# write_file PATH MODE OWNER < content: replace PATH only when the content differs.
# Returns 0 when the file changed.
write_file() {
    local path=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp "$path.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$path"
    log "wrote $path"
}

mkdir -p "$STATE"/{pids,log}
install_packages

NODE=$(hostname -s)
# The node line must match the hardware slurmd sees, or slurmd registers as invalid.
HW=$(slurmd -C | head -1)
[[ $HW == NodeName=$NODE\ * ]] || die "unexpected 'slurmd -C' output: $HW"
HW=${HW#NodeName="$NODE" }
GPU_DEV=$STATE/dev/nvidia0

mkdir -p "$STATE"/{run,ctld,spool,dev} /run/munge /run/mysqld
chown slurm:slurm "$STATE"/{run,ctld,log}
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld
# Placeholder for the one GPU: slurmd requires gres.conf's File= to be a character
# device, so make a twin of /dev/null (or use /dev/null itself where mknod is refused).
if [[ ! -c $GPU_DEV ]]; then
    rm -f "$GPU_DEV"
    mknod -m 666 "$GPU_DEV" c 1 3 2>/dev/null || GPU_DEV=/dev/null
fi

# ---------------------------------------------------------------- configuration
CTLD_CHANGED=0
DBD_CHANGED=0
if write_file /etc/slurm/slurm.conf 644 root:root <<EOF; then CTLD_CHANGED=1; fi
# Written by tests/cluster/up.sh: one-node test cluster for vnas (not a site config).
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
# No cgroups in this container: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 $HW Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
if write_file /etc/slurm/gres.conf 644 root:root <<EOF; then CTLD_CHANGED=1; fi
AutoDetect=off
NodeName=$NODE Name=gpu File=$GPU_DEV
EOF
if write_file /etc/slurm/cgroup.conf 644 root:root <<EOF; then CTLD_CHANGED=1; fi
# slurmd 22.05 always loads a cgroup plugin (there is no "disabled" before 23.02), even
# with proctrack/linuxproc and task/none; autodetect finds the v1 or v2 hierarchy.
CgroupPlugin=autodetect
EOF

DB_PASS=""
if [[ -f /etc/slurm/slurmdbd.conf ]]; then
    DB_PASS=$(sed -n 's/^StoragePass=//p' /etc/slurm/slurmdbd.conf)
fi
[[ -n $DB_PASS ]] || DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
if write_file /etc/slurm/slurmdbd.conf 600 slurm:slurm <<EOF; then DBD_CHANGED=1; fi
# Written by tests/cluster/up.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF

# ---------------------------------------------------------------- munge
[[ -s /etc/munge/munge.key ]] || {
    mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
}
start munge /usr/sbin/munged \
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
wait_for munge munge "$STATE/log/munge.out" bash -c 'munge -n | unmunge' ||
    die "munge did not start"

# ---------------------------------------------------------------- MariaDB
[[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >>"$STATE/log/mariadb.out" 2>&1
start mariadb /usr/sbin/mariadbd \
    /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$MYSQL_SOCKET"
wait_for mariadb mariadb "$STATE/log/mariadb.out" mariadb-admin --socket="$MYSQL_SOCKET" ping ||
    die "mariadb did not start"
mariadb --socket="$MYSQL_SOCKET" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

# ---------------------------------------------------------------- SLURM
[[ $DBD_CHANGED -eq 1 ]] && stop slurmdbd /usr/sbin/slurmdbd
start slurmdbd /usr/sbin/slurmdbd /usr/sbin/slurmdbd -D
wait_for slurmdbd slurmdbd "$STATE/log/slurmdbd.log" sacctmgr -n list cluster ||
    die "slurmdbd did not start"

# Accounting: the cluster, the account, and root as a user of it (the executor checks
# the account with sacctmgr and polls job states with sacct).
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="vnas test account" Organization=vnas >/dev/null
[[ -n $(sacctmgr -n -P list assoc where user=root account="$ACCOUNT" format=user) ]] ||
    sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null

if [[ $CTLD_CHANGED -eq 1 ]]; then
    stop slurmd /usr/sbin/slurmd
    stop slurmctld /usr/sbin/slurmctld
fi
start slurmctld /usr/sbin/slurmctld /usr/sbin/slurmctld -D
wait_for slurmctld slurmctld "$STATE/log/slurmctld.log" bash -c 'scontrol ping | grep -q UP' ||
    die "slurmctld did not start"
start slurmd /usr/sbin/slurmd /usr/sbin/slurmd -D
# Idle, or busy with jobs when up.sh runs again on a working cluster ("*" = not responding).
node_idle() { [[ $(sinfo -h -N -n "$NODE" -p cpu -o %T) =~ ^(idle|mixed|allocated)$ ]]; }
if ! wait_for slurmd "node $NODE to be idle" "$STATE/log/slurmd.log" node_idle; then
    scontrol show node "$NODE" >&2 || true
    tail -20 "$STATE/log/slurmctld.log" >&2 || true
    die "node $NODE is not idle"
fi

sinfo
log "cluster up in $((SECONDS - T0)) s"
