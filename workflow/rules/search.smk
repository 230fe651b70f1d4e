# Per-fold architecture search (GPU jobs), the aggregation over folds, and the random
# architectures of the random baseline.



rule search:
    """First-order V-NAS search on one fold: alternating weight and alpha/beta steps."""
    conda:
        "../envs/vnas.yaml"
    input:
        data="data/preprocessed/{dataset}",
        folds="results/{dataset}/folds.json",
    output:
        arch="results/{dataset}/search/fold{fold}/arch.json",
        trajectory="results/{dataset}/search/fold{fold}/trajectory.csv",
        diagnostics="results/{dataset}/search/fold{fold}/diagnostics.json",
    params:
        out="results/{dataset}/search/fold{fold}",
        # the declared settings (workflow/scripts/rule_settings.py), one JSON record
        settings=lambda w: rule_settings("search", config, w),
        workers=lambda w: threads_of(w) - 1,
    threads: lambda w: threads_of(w)
    resources:
        gpu=1,
    benchmark:
        "results/benchmarks/{dataset}/search/fold{fold}.tsv"
    log:
        "results/logs/{dataset}/search_fold{fold}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas search --settings {params.settings:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold {wildcards.fold:q} "
        "--out {params.out:q} --workers {params.workers:q} --force 2> {log:q}"


rule aggregate:
    """Sum the folds' softmax probabilities and take the argmax per cell (paper §4.1)."""
    conda:
        "../envs/vnas.yaml"
    input:
        lambda w: expand(
            "results/{dataset}/search/fold{fold}/arch.json",
            dataset=w.dataset,
            fold=folds(w.dataset),
        ),
    output:
        arch="results/{dataset}/arch.json",
        diagnostics="results/{dataset}/diagnostics.json",
    params:
        dirs=lambda w, input: [os.path.dirname(p) for p in input],
    benchmark:
        "results/benchmarks/{dataset}/aggregate/job.tsv"
    log:
        "results/logs/{dataset}/aggregate.log",
    shell:
        "vnas aggregate {params.dirs:q} --out {output.arch:q} "
        "--diagnostics {output.diagnostics:q} 2> {log:q}"


rule aggregate_pt:
    """V-NAS-PT: the folds' perturbation scores (searches run with --pt-patches, their
    perturbation.json beside arch.json) pooled per cell; cells without an answer keep the
    argmax code."""
    conda:
        "../envs/vnas.yaml"
    input:
        lambda w: expand(
            "results/{dataset}/search/fold{fold}/arch.json",
            dataset=w.dataset,
            fold=folds(w.dataset),
        ),
    output:
        "results/{dataset}/arch-pt.json",
    params:
        dirs=lambda w, input: [os.path.dirname(p) for p in input],
    benchmark:
        "results/benchmarks/{dataset}/aggregate_pt/job.tsv"
    log:
        "results/logs/{dataset}/aggregate_pt.log",
    shell:
        "vnas aggregate {params.dirs:q} --selection perturbation --out {output:q} 2> {log:q}"


rule random_archs:
    """Architectures drawn uniformly from the search space: the random baseline."""
    conda:
        "../envs/vnas.yaml"
    output:
        directory("results/{dataset}/random"),
    params:
        **rule_params("random_archs", config),  # seed, samples
    benchmark:
        "results/benchmarks/{dataset}/random_archs/job.tsv"
    log:
        "results/logs/{dataset}/random_archs.log",
    shell:
        "vnas arch random --samples {params.samples:q} --seed {params.seed:q} "
        "--out {output:q} 2> {log:q}"
