#!/usr/bin/env bash
# Stop the one-node SLURM cluster that tests/cluster/up.sh started: only the PIDs it
# recorded in $STATE/pids, in reverse start order. Idempotent; packages, configuration
# and the accounting database stay, so the next up.sh is quick.
set -euo pipefail

STATE=${VNAS_SLURM_STATE:-/tmp/vnas-slurm}

log() { echo "down.sh: $*" >&2; }

# Jobs still on the test cluster would outlive slurmd (slurmstepd is detached): cancel
# them first, while our controller still runs.
if [[ -s $STATE/pids/slurmctld.pid ]] && kill -0 "$(<"$STATE/pids/slurmctld.pid")" 2>/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs $(echo $jobs)"
        scancel $jobs || true
        for _ in $(seq 50); do
            [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

for name in slurmd slurmctld slurmdbd mariadb munge; do
    f="$STATE/pids/$name.pid"
    [[ -s $f ]] || continue
    pid=$(<"$f")
    # Only a live process that is still the daemon up.sh started (PID reuse guard).
    if kill -0 "$pid" 2>/dev/null &&
        [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$name"* ]]; then
        kill "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$f"
done
