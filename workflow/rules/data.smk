# Raw data -> preprocessed volumes -> folds.


rule synthesize:
    """Write the synthetic phantom dataset in its real layout (synthetic datasets only)."""
    conda:
        "../envs/vnas.yaml"
    output:
        directory("data/raw/{dataset}"),
    wildcard_constraints:
        dataset="|".join(d for d in DATASETS if is_synthetic(d)) or "^$",
    params:
        **rule_params("synthesize", config),  # kind, cases, seed, shape
    benchmark:
        "results/benchmarks/{dataset}/synthesize/job.tsv"
    log:
        "results/logs/{dataset}/synthesize.log",
    shell:
        "vnas synth --kind {params.kind:q} --cases {params.cases:q} --seed {params.seed:q} "
        "--shape {params.shape:q} --out {output:q} 2> {log:q}"


rule preprocess:
    """HU clip, z-score, resampling and reorientation per the dataset's preset, or the
    dataset's own hu_window/spacing (from `vnas plan`)."""
    conda:
        "../envs/vnas.yaml"
    input:
        raw_input,
    output:
        directory("data/preprocessed/{dataset}"),
    params:
        **rule_params("preprocess", config),  # preset, settings (--hu-window, --spacing)
        raw_manifest=raw_identity,
    threads: 2
    benchmark:
        "results/benchmarks/{dataset}/preprocess/job.tsv"
    log:
        "results/logs/{dataset}/preprocess.log",
    shell:
        "vnas preprocess --raw {input:q} --out {output:q} --preset {params.preset:q} "
        "{params.settings:q} --jobs {threads:q} 2> {log:q}"


rule split:
    """Seeded 4-fold split; per fold the rest is split train:val = 2:1."""
    conda:
        "../envs/vnas.yaml"
    input:
        "data/preprocessed/{dataset}",
    output:
        "results/{dataset}/folds.json",
    params:
        **rule_params("split", config),  # seed, folds
    benchmark:
        "results/benchmarks/{dataset}/split/job.tsv"
    log:
        "results/logs/{dataset}/split.log",
    shell:
        "vnas split --preprocessed {input:q} --n-folds {params.folds:q} --seed {params.seed:q} "
        "--out {output:q} 2> {log:q}"
