#!/usr/bin/env bash
# Make sure a single-node Slurm cluster of this checkout runs (Debian's slurmctld, slurmd,
# slurm-client and munge), for the worker's `slurm` backend and its tests. Idempotent: a cluster
# that runs and answers is reused; one that is down is started again on its recorded ports.
#
# Private to this checkout: everything lives in .dev/slurm/ (its own slurm.conf and gres.conf,
# munge key and socket, state and spool directories, pid and log files), on two free TCP ports
# chosen once (recorded in .dev/slurm/ports); it never touches /etc/slurm, /etc/munge or the
# system's munged. Clients reach it with SLURM_CONF=.dev/slurm/etc/slurm.conf (written to .dev/env
# as RYAX_TEST_SLURM_CONF).
#
# The node `ryax1` declares 4 CPUs, 4 GiB of memory and 2 GPUs (GRES without device files), the
# same on every machine (SlurmdParameters=config_overrides); CR_Core_Memory and DefMemPerCPU let
# jobs run side by side. Partitions: `debug` (default, 30 min) and `short` (1 min).
# Stop it with: dev/ensure-slurm.sh --stop
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP=slurm
ROOT="$DEV_STATE/slurm"
ETC="$ROOT/etc"
CONF="$ETC/slurm.conf"
MUNGE="$ROOT/munge"
SOCKET="$MUNGE/munge.socket"
NODE=ryax1
START_TIMEOUT=60

pid_alive() {
    local file="$1" pid
    [[ -s "$file" ]] || return 1
    pid="$(tr -d ' \n' <"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

stop_pid() {
    local file="$1" pid
    if pid_alive "$file"; then
        pid="$(tr -d ' \n' <"$file")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
}

if [[ "${1:-}" == "--stop" ]]; then
    stop_pid "$ROOT/run/slurmd.pid"
    stop_pid "$ROOT/run/slurmctld.pid"
    stop_pid "$MUNGE/munged.pid"
    info "$DEP" "stopped (state kept in $ROOT)"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    apt_install "$DEP" slurmctld slurmd slurm-client munge
fi
for binary in slurmctld slurmd sbatch squeue scontrol sinfo scancel sacct munged; do
    command -v "$binary" >/dev/null || die "$DEP" "no $binary after installing slurm-wlm and munge"
done
is_root || die "$DEP" "slurmd runs jobs as their owner and must start as root"

mkdir -p "$ETC" "$MUNGE" "$ROOT/state/ctld" "$ROOT/state/d" "$ROOT/run" "$ROOT/log" "$ROOT/dev"
chmod 700 "$ROOT" "$MUNGE"

# -- ports, chosen once ------------------------------------------------------------------------
if [[ ! -s "$ROOT/ports" ]]; then
    python3 - >"$ROOT/ports" <<'EOF'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print("CTLD_PORT=%d" % sockets[0].getsockname()[1])
print("SLURMD_PORT=%d" % sockets[1].getsockname()[1])
EOF
fi
# shellcheck disable=SC1091
source "$ROOT/ports"

# -- configuration (rewritten only when it changes) ----------------------------------------------
host="$(hostname -s)"
cluster="ryax$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-8)"
conf="$(cat <<EOF
# Written by dev/ensure-slurm.sh: a private single-node cluster of $REPO_ROOT.
ClusterName=$cluster
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$ROOT/state/ctld
SlurmdSpoolDir=$ROOT/state/d
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=2
OverTimeLimit=0
InactiveLimit=0
SlurmdTimeout=120
MessageTimeout=20
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$host CPUs=4 RealMemory=4096 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=30 State=UP
PartitionName=short Nodes=$NODE MaxTime=1 State=UP
EOF
)"
# Two fake GPUs: gres/gpu wants device files; character devices with the numbers of /dev/null
# and /dev/zero (nothing opens them: no job here uses a GPU, they are only counted).
for i in 0 1; do
    if [[ ! -c "$ROOT/dev/gpu$i" ]]; then
        rm -f "$ROOT/dev/gpu$i"
        mknod "$ROOT/dev/gpu$i" c 1 $((3 + 2 * i)) 2>/dev/null || touch "$ROOT/dev/gpu$i"
    fi
done
gres="NodeName=$NODE Name=gpu File=$ROOT/dev/gpu[0-1]"
changed=0
if [[ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]]; then
    printf '%s\n' "$conf" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    changed=1
fi
if [[ "$(cat "$ETC/gres.conf" 2>/dev/null)" != "$gres" ]]; then
    printf '%s\n' "$gres" >"$ETC/gres.conf"
    changed=1
fi
chmod 644 "$CONF" "$ETC/gres.conf"
export SLURM_CONF="$CONF"

# -- munge: own key, own socket ------------------------------------------------------------------
if [[ ! -s "$MUNGE/munge.key" ]]; then
    (umask 077 && dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none)
fi
chmod 400 "$MUNGE/munge.key"
if ! pid_alive "$MUNGE/munged.pid" || [[ ! -S "$SOCKET" ]]; then
    stop_pid "$MUNGE/munged.pid"
    info "$DEP" "starting munged (socket $SOCKET)"
    munged --force --socket="$SOCKET" --key-file="$MUNGE/munge.key" \
        --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" \
        --seed-file="$MUNGE/munged.seed" </dev/null \
        || die "$DEP" "command failed: munged (see $MUNGE/munged.log)"
    for _ in $(seq 1 50); do [[ -S "$SOCKET" ]] && break; sleep 0.1; done
fi
munge --socket="$SOCKET" -n </dev/null | unmunge --socket="$SOCKET" >/dev/null \
    || die "$DEP" "munge does not work on $SOCKET (see $MUNGE/munged.log)"

# -- slurmctld and slurmd -------------------------------------------------------------------------
answers() {
    timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"
}
if ((changed)); then
    # A new configuration: restart what runs with the old one (state is kept).
    stop_pid "$ROOT/run/slurmd.pid"
    stop_pid "$ROOT/run/slurmctld.pid"
fi
if ! pid_alive "$ROOT/run/slurmctld.pid" || ! answers; then
    stop_pid "$ROOT/run/slurmctld.pid"
    info "$DEP" "starting slurmctld on 127.0.0.1:$CTLD_PORT"
    slurmctld -f "$CONF" </dev/null \
        || die "$DEP" "command failed: slurmctld (see $ROOT/log/slurmctld.log)"
    deadline=$((SECONDS + START_TIMEOUT))
    until answers; do
        ((SECONDS < deadline)) || die "$DEP" "slurmctld does not answer after ${START_TIMEOUT}s" \
            "(see $ROOT/log/slurmctld.log)"
        sleep 0.5
    done
fi
if ! pid_alive "$ROOT/run/slurmd.pid"; then
    info "$DEP" "starting slurmd $NODE on 127.0.0.1:$SLURMD_PORT"
    slurmd -f "$CONF" -N "$NODE" </dev/null \
        || die "$DEP" "command failed: slurmd (see $ROOT/log/slurmd.log)"
fi
# The node must be usable: idle, mixed or allocated (a node left down or drained is resumed).
deadline=$((SECONDS + START_TIMEOUT))
while true; do
    state="$(timeout 10 sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true)"
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | fail* | inval*)
            timeout 10 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    ((SECONDS < deadline)) || die "$DEP" "node $NODE is '$state' after ${START_TIMEOUT}s" \
        "(see $ROOT/log/slurmd.log and 'SLURM_CONF=$CONF scontrol show node $NODE')"
    sleep 0.5
done

set_dev_env RYAX_TEST_SLURM_CONF "$CONF"
info "$DEP" "ok: cluster $cluster, node $NODE $state, slurmctld 127.0.0.1:$CTLD_PORT (SLURM_CONF=$CONF)"
