# Sourced on each compute node before its job runs (profiles/slurm/config.yaml:
# precommand). Empty by default: sbatch exports the login node's environment. Examples:
#
# module load cuda/12.4                      # SITE VALUE: the module your GPUs need
# source /shared/path/to/vnas/.venv/bin/activate
# eval "$(conda shell.bash hook)" && conda activate vnas
