#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for testing the slurm profile (tests/test_slurm.py).
#
#   tools/slurm_local.sh install      # Debian's slurm and munge (needs root and the Debian registry)
#   tools/slurm_local.sh start DIR    # munged, slurmctld, slurmd with a generated config under DIR
#   tools/slurm_local.sh stop DIR     # stop what `start` started, by the PIDs it recorded
#
# After `start`, export SLURM_CONF=DIR/slurm.conf so sbatch/squeue talk to this cluster. Partitions:
# "cpu" (default) and "gpu", on the same node, which has one fake GPU (gres.conf points at /dev/null)
# so that `--gpus=1` schedules here. There is no systemd here, so the daemons are started by hand;
# there is no accounting database, so `sacct` fails (the test profile uses `squeue` for job status).
set -euo pipefail

cmd=${1:?usage: slurm_local.sh install|start DIR|stop DIR}

case "$cmd" in
install)
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    ;;
start)
    dir=$(realpath -m "${2:?start needs a directory}")
    mkdir -p "$dir"/{spool,state,munge,log}
    chmod 700 "$dir/munge"
    host=$(hostname -s)
    # Declare at least 8 CPUs: rules ask for up to 4 threads, and a job asking for more CPUs than the
    # node has never starts. config_overrides lets slurmd accept more than the hardware has.
    cpus=$(($(nproc) > 8 ? $(nproc) : 8))
    mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
    # munge: its own key, socket and pid file, so nothing of the machine's is touched
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed"
    cat >"$dir/gres.conf" <<EOF
NodeName=$host Name=gpu Type=fake File=/dev/null
EOF
    cat >"$dir/slurm.conf" <<EOF
ClusterName=samesky-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
InactiveLimit=0
KillWait=10
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:fake:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
    # The slurm-jobstep plugin clears SLURM_CONF before the srun inside each job, so srun must find the
    # config where real clusters keep it: link it there while this cluster runs (stop removes the link).
    if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$dir/slurm.conf" ]; then
        echo "/etc/slurm/slurm.conf exists and is not ours: not touching a configured machine" >&2
        exit 1
    fi
    mkdir -p /etc/slurm
    ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
    touch "$dir/linked-etc-slurm-conf"
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 60); do
        if sinfo -h -o "%T" 2>/dev/null | grep -qx idle; then
            sinfo
            exit 0
        fi
        sleep 1
    done
    echo "the node did not become idle; see $dir/log" >&2
    sinfo >&2 || true
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    exit 1
    ;;
stop)
    dir=$(realpath -m "${2:?stop needs a directory}")
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        if [ -s "$pidfile" ]; then
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [ -e "$dir/linked-etc-slurm-conf" ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$dir/slurm.conf" ]; then
        rm -f /etc/slurm/slurm.conf "$dir/linked-etc-slurm-conf"
    fi
    ;;
*)
    echo "unknown command '$cmd'" >&2
    exit 2
    ;;
esac
