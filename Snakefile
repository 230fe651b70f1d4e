# vnas pipeline: raw CT -> preprocessing -> folds -> per-fold search -> aggregation ->
# per-fold retraining -> evaluation -> the paper's tables, figures and a report.
#
#   snakemake --cores 4 --resources gpu=1 -- results/tables/nih.csv
#   snakemake --cores 2 results/tables/synthetic.csv          (profiles/default: gpu=1)
#   snakemake --workflow-profile profiles/slurm results/tables/nih.csv
#   make experiment        (the known-answer experiment, EXPERIMENTS.md; not part of `all`)
#
# params.yaml is the one configuration; every value reaches the rules that use it as a
# `params:` entry, so changing it reruns exactly those jobs.

import os
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The checkout the rules' conda environment installs vnas from (its post-deploy script
# reads it; set here, not asserted with `envvars:`, since no user has to set it).
os.environ.update(VNAS_SOURCE=workflow.basedir)


def refuse_templated_config(path):
    """Stop with one line if a config file asks Snakemake to evaluate it as a YTE
    template (`__use_yte__` at its top): its `?` expressions would run as Python. vnas
    config files are plain YAML. Checked here with yaml.safe_load, before the
    `configfile:` below loads params.yaml; a `--configfile` given on the command line is
    loaded by Snakemake before this file runs, so for those this stops the run only
    after the fact (check such a file with `grep __use_yte__` before using it)."""
    import sys

    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        sys.exit(f"vnas: {path}: not a readable YAML config file ({str(err).splitlines()[0]})")
    if isinstance(document, dict) and "__use_yte__" in document:
        sys.exit(
            f"vnas: {path}: holds __use_yte__, which makes Snakemake run its `?` expressions "
            "as Python; vnas config files are plain YAML: remove the key and the expressions"
        )


for _config_path in ["params.yaml", *workflow.config_settings.configfiles]:
    if Path(_config_path).exists():
        refuse_templated_config(_config_path)


configfile: "params.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/experiment.smk"


localrules:
    all,
    all_searches,
    all_models,
    all_evaluations,
    all_ensembles,
    ensemble,


DEFAULT = config["dataset"]


rule all:
    """Tables, figures and report of the default dataset (params.yaml: `dataset`), and
    each table method's fold ensemble, ready for `vnas predict`."""
    input:
        f"results/tables/{DEFAULT}.csv",
        f"results/report/{DEFAULT}.html",
        expand("results/{d}/ensemble/{m}/ensemble.json", d=DEFAULT, m=table_methods(DEFAULT)),


# One target per pipeline step of the default dataset: dvc.yaml's stages ask for these.
rule all_searches:
    input:
        expand("results/{d}/search/fold{k}/arch.json", d=DEFAULT, k=folds(DEFAULT)),


rule all_models:
    input:
        expand(
            "results/{d}/models/{m}/fold{k}/model.pt",
            d=DEFAULT,
            m=all_methods(DEFAULT),
            k=folds(DEFAULT),
        ),


rule all_evaluations:
    input:
        expand(
            "results/{d}/eval/{m}/fold{k}/metrics.csv",
            d=DEFAULT,
            m=all_methods(DEFAULT),
            k=folds(DEFAULT),
        ),


rule all_ensembles:
    input:
        expand("results/{d}/ensemble/{m}/ensemble.json", d=DEFAULT, m=table_methods(DEFAULT)),
