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

from snakemake.utils import min_version

min_version("9.0")

# The checkout the rules' conda environment installs vnas from (its post-deploy script
# reads it; set here, not asserted with `envvars:`, since no user has to set it).
os.environ.update(VNAS_SOURCE=workflow.basedir)


# Refuses config files that Snakemake would evaluate as templates (before `configfile:`).
include: "workflow/rules/config_guard.smk"


configfile: "params.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/experiment.smk"
include: "workflow/rules/experiment2_common.smk"
include: "workflow/rules/experiment2.smk"


localrules:
    all,
    all_searches,
    all_models,
    all_evaluations,
    all_ensembles,
    all_predictions,
    ensemble,


DEFAULT = config["dataset"]


rule all:
    """Tables, figures and report of the default dataset (params.yaml: `dataset`), each
    table method's fold ensemble, ready for `vnas predict`, and its predictions of the
    dataset's test images (`test_images`, or RAW/imagesTs) where there are some."""
    input:
        f"results/tables/{DEFAULT}.csv",
        f"results/report/{DEFAULT}.html",
        expand("results/{d}/ensemble/{m}/ensemble.json", d=DEFAULT, m=table_methods(DEFAULT)),
        test_predictions(DEFAULT),


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


rule all_predictions:
    input:
        test_predictions(DEFAULT),


rule all_ensembles:
    input:
        expand("results/{d}/ensemble/{m}/ensemble.json", d=DEFAULT, m=table_methods(DEFAULT)),
