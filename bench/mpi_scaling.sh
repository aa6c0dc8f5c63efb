#!/usr/bin/env bash
# 1 process against N MPI ranks on this machine: classify over a folder of
# images and a cache-filling finetune epoch, each rank with one thread, and
# one process with as many threads as the ranks for comparison. Prints a
# table of medians over interleaved rounds (README, "Many machines").
#
#   bench/mpi_scaling.sh [--arch alexnet|vgg16] [--images 64] [--rounds 5]
#                        [--ranks 2] [--build build] [--data DIR]
#
# --data is an ImageFolder (default $GRAFT_DATA/hymenoptera, else
# ../shared/data/hymenoptera): classify takes the first --images images of
# its val/ and train/ folders, finetune runs one epoch of the whole set with
# augment none and trainable head (the epoch that fills the feature cache;
# with the head alone to train, the trunk is nearly all of it) and reports
# the seconds metrics.csv gives it (training and validation, the set-up and
# the saving of best.h5 and last.h5 excluded); classify's times are the
# whole command's (the weights loaded by every process included). Beside
# each time, the busiest process's CPU seconds (whole command): on a
# machine shared with other work, the speed-up they allow is the one to
# trust. Random weights (seeded): the timings do not depend on them. Needs
# mpirun, /usr/bin/time and a python3 with torch (for the weights file;
# GRAFT_PYTHON, else /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."

arch=alexnet images=64 rounds=5 ranks=2 build=build
data=${GRAFT_DATA:-../shared/data}/hymenoptera
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "mpi_scaling: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
py=${GRAFT_PYTHON:-/usr/bin/python3}
bin=$(realpath "$build")/bin
command -v mpirun > /dev/null || { echo "mpi_scaling: no mpirun (install openmpi-bin)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "mpi_scaling: no /usr/bin/time (install time)" >&2; exit 2; }
[ -d "$data/train" ] || { echo "mpi_scaling: no ImageFolder at $data" >&2; exit 2; }
[ -x "$bin/classify" ] || { echo "mpi_scaling: no $bin/classify (build first)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --oversubscribe --bind-to core)

T=$(mktemp -d /tmp/graft-mpi-scaling-XXXXXX)
trap 'rm -rf "$T"' EXIT
"$py" models/export_torchvision.py --arch "$arch" --seed 0 --num-classes 2 \
  --class-names ants,bees -o "$T/model.h5" > /dev/null
mkdir "$T/imgs"
mapfile -t all < <(for d in val/ants val/bees train/ants train/bees; do ls "$data/$d/"*.jpg; done)
for f in "${all[@]:0:$images}"; do ln -s "$(realpath "$f")" "$T/imgs/$(basename "$f")"; done
have=$(ls "$T/imgs" | wc -l)

# Each process under /usr/bin/time: its CPU seconds (user + system, all its
# threads) in $T/rt.RANK. The busiest process's CPU time is what the run
# would take with a core per thread and nothing else on the machine: the
# speed-up it allows is the one a loaded machine cannot show in wall time.
cat > "$T/timed" << EOF
#!/bin/sh
exec /usr/bin/time -f "%U %S" -o "$T/rt.\${OMPI_COMM_WORLD_RANK:-0}" "\$@"
EOF
chmod +x "$T/timed"
busiest() { cat "$T"/rt.* | awk '{c = $1 + $2; if (c > m) m = c} END {printf "%.3f\n", m}'; }
now() { date +%s.%N; }
classify_run() { # classify_run KEY LAUNCH...: the folder, batches of 8, seconds to $T/KEY.times
  local key=$1 t0 t1
  shift
  rm -f "$T"/rt.*
  t0=$(now)
  "$@" "$T/timed" "$bin/classify" -w "$T/model.h5" -d cpu -b 8 "${threads[@]}" "$T/imgs" > "$T/$key.out" 2> /dev/null ||
    [ $? -eq 1 ]
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}' >> "$T/$key.times"
  busiest >> "$T/$key.cpu"
}
epoch_run() { # epoch_run KEY THREADS LAUNCH...: the epoch's seconds (metrics.csv)
  local key=$1 th=$2
  shift 2
  rm -rf "$T/runs"
  "$bin/finetune" --init "$T/epoch.h5" --arch "$arch" --weights model.h5 \
    --data "$(realpath "$data")" --epochs 1 --augment none --trainable head --device cpu \
    --threads "$th" > "$T/init.log" 2>&1 || { cat "$T/init.log" >&2; exit 1; }
  rm -f "$T"/rt.*
  "$@" "$T/timed" "$bin/finetune" -q --restart "$T/epoch.h5" > /dev/null 2>&1
  tail -1 "$T/runs/epoch/metrics.csv" | cut -d, -f7 >> "$T/$key.times"
  busiest >> "$T/$key.cpu"
}
median() { sort -n "$1" | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2;
                                  printf "%.2f (%.2f-%.2f)", m, v[1], v[NR]}'; }
med() { sort -n "$1" | awk '{v[NR]=$1} END {print NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
  "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$arch, classify: $have images, batches of 8; epoch: $(realpath "$data"), augment none," \
  "trainable head, batches of 4;" \
  "$rounds rounds, interleaved"
for ((r = 0; r < rounds; r++)); do
  threads=(-t 1); classify_run c_one
  threads=(-t "$ranks"); classify_run c_threads
  threads=(-t 1); classify_run c_ranks "${mpi[@]}" -n "$ranks"
  epoch_run e_one 1
  epoch_run e_threads "$ranks"
  epoch_run e_ranks 1 "${mpi[@]}" -n "$ranks"
done
cmp -s "$T/c_one.out" "$T/c_ranks.out" || echo "WARNING: $ranks ranks printed other results than one process"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "time: seconds, median (lowest-highest); CPU: the busiest process's CPU seconds (all its" \
  "threads, the whole command), median; its speed-up only where every process has one thread"
echo
printf '| %-48s | %-20s | %-8s | %-6s | %-8s |\n' work time speed-up CPU speed-up
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..50})" "$(printf -- '-%.0s' {1..22})" \
  ---------- -------- ----------
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN {printf "%.2fx", a / b}'; }
row() { # row LABEL KEY BASE [-]: the CPU speed-up but for a process of several threads (-)
  printf '| %-48s | %-20s | %-8s | %-6s | %-8s |\n' "$1" "$(median "$T/$2.times")" \
    "$(ratio "$T/$3.times" "$T/$2.times")" "$(med "$T/$2.cpu")" \
    "$([ -n "${4:-}" ] && echo - || ratio "$T/$3.cpu" "$T/$2.cpu")"
}
row "classify $have images: 1 process, 1 thread" c_one c_one
row "classify: 1 process, $ranks threads" c_threads c_one -
row "classify: mpirun -n $ranks, 1 thread each" c_ranks c_one
row "cache-filling epoch: 1 process, 1 thread" e_one e_one
row "cache-filling epoch: 1 process, $ranks threads" e_threads e_one -
row "cache-filling epoch: mpirun -n $ranks, 1 thread each" e_ranks e_one
