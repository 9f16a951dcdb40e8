#!/bin/bash
# One run of a sweep per SLURM array task: line (task id + 1) of a file of
# `python -m landmark_ssl.sweep ... --dry_run` command lines.
#
#   python -m landmark_ssl.sweep --config=experiments/blocks.py \
#       --workdir=/shared/table1 --dry_run > runs.txt
#   sbatch --array=0-$(( $(wc -l < runs.txt) - 1 )) cluster/slurm_array.sh runs.txt
#
# The workdir must be on storage every node sees. Submitting the same array
# again is safe: a finished run does nothing, an interrupted one resumes from
# its checkpoint, and a run another task holds is refused by its lock. A run
# preempted by SIGTERM saves and exits 75; --requeue puts the task back.
# Adjust the resources to the model (one GPU per run is plenty for the
# paper's nets; several runs of a cell fit one GPU with --vectorize_seeds).
#
#SBATCH --job-name=landmark_ssl
#SBATCH --output=slurm-%A_%a.out
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --time=12:00:00
#SBATCH --requeue
set -euo pipefail
list="${1:?usage: sbatch --array=0-<lines - 1> cluster/slurm_array.sh RUNS_FILE}"
task="${SLURM_ARRAY_TASK_ID:?run through sbatch --array (SLURM_ARRAY_TASK_ID is not set)}"
line="$(sed -n "$((task + 1))p" "$list")"
if [[ -z "$line" ]]; then
  echo "slurm_array.sh: $list has no line $((task + 1)) (array task $task); " \
       "submit --array=0-$(( $(wc -l < "$list") - 1 ))." >&2
  exit 2
fi
echo "slurm_array.sh: task $task: $line" >&2
# The lines are shell-quoted by sweep --dry_run (shlex.join).
eval "exec $line"
