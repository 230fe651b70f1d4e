# Known-answer experiments (EXPERIMENTS.md): not part of `all`, the demo or dvc.yaml.
#
#   make experiment   (timed; then `vnas experiment report` writes EXPERIMENTS.md)
#   snakemake --cores 2 --resources gpu=2 -- results/experiments/known_answer_summary.json
#
# Per cue (phantom variant): synthesize, preprocess, split; one search per seed on fold 0;
# random codes; retraining of every method on fold 0's train+val; evaluation on its test
# cases; then one summary of all. Every job writes a Snakemake benchmark file (wall and
# CPU time) under benchmarks/.

wildcard_constraints:
    experiment=r"[A-Za-z0-9_]+",
    cue="through-plane|in-plane",
    seed=r"\d+",


rule experiment_synthesize:
    """The tubes phantom of one cue."""
    conda:
        "../envs/vnas.yaml"
    output:
        directory("results/experiments/{experiment}/{cue}/raw"),
    params:
        cases=lambda w: xp(w)["cases"],
        seed=lambda w: xp(w)["data_seed"],
        shape=lambda w: shape_arg(xp(w)["shape"]),
    benchmark:
        "results/experiments/{experiment}/benchmarks/synthesize_{cue}.tsv"
    log:
        "results/experiments/{experiment}/logs/synthesize_{cue}.log",
    shell:
        "vnas synth --kind tubes --cue {wildcards.cue:q} --cases {params.cases:q} "
        "--seed {params.seed:q} --shape {params.shape:q} --no-progress --out {output:q} "
        "2> {log:q}"


rule experiment_preprocess:
    conda:
        "../envs/vnas.yaml"
    input:
        "results/experiments/{experiment}/{cue}/raw",
    output:
        directory("results/experiments/{experiment}/{cue}/preprocessed"),
    benchmark:
        "results/experiments/{experiment}/benchmarks/preprocess_{cue}.tsv"
    log:
        "results/experiments/{experiment}/logs/preprocess_{cue}.log",
    shell:
        "vnas preprocess --raw {input:q} --out {output:q} --preset synthetic-tubes "
        "--jobs 1 2> {log:q}"


rule experiment_split:
    conda:
        "../envs/vnas.yaml"
    input:
        "results/experiments/{experiment}/{cue}/preprocessed",
    output:
        "results/experiments/{experiment}/{cue}/folds.json",
    params:
        folds=lambda w: xp(w)["folds"],
        seed=lambda w: xp(w)["data_seed"],
    log:
        "results/experiments/{experiment}/logs/split_{cue}.log",
    shell:
        "vnas split --preprocessed {input:q} --n-folds {params.folds:q} --seed {params.seed:q} "
        "--out {output:q} 2> {log:q}"


rule experiment_search:
    """One search of fold 0 with search seed {seed}."""
    conda:
        "../envs/vnas.yaml"
    input:
        data="results/experiments/{experiment}/{cue}/preprocessed",
        folds="results/experiments/{experiment}/{cue}/folds.json",
    output:
        arch="results/experiments/{experiment}/{cue}/search/seed{seed}/arch.json",
        diagnostics="results/experiments/{experiment}/{cue}/search/seed{seed}/diagnostics.json",
        trajectory="results/experiments/{experiment}/{cue}/search/seed{seed}/trajectory.csv",
    params:
        out="results/experiments/{experiment}/{cue}/search/seed{seed}",
        iterations=lambda w: xp(w)["search_iterations"],
        warmup=lambda w: xp(w)["warmup_fraction"],
        rule=lambda w: xp(w)["arch_lr_rule"],
        arch=[
            *("--arch-lr", config["arch_lr"]),
            *("--arch-weight-decay", config["arch_weight_decay"]),
        ],
        training=xp_training_args,
    threads: lambda w: xp(w)["threads"]
    resources:
        gpu=1,
    benchmark:
        "results/experiments/{experiment}/benchmarks/search_{cue}_seed{seed}.tsv"
    log:
        "results/experiments/{experiment}/logs/search_{cue}_seed{seed}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas search --preprocessed {input.data:q} "
        "--folds {input.folds:q} --fold 0 --out {params.out:q} --seed {wildcards.seed:q} "
        "--iterations {params.iterations:q} --warmup-fraction {params.warmup:q} "
        "--arch-lr-rule {params.rule:q} {params.arch:q} {params.training:q} --force "
        "2> {log:q}"


rule experiment_random:
    conda:
        "../envs/vnas.yaml"
    output:
        directory("results/experiments/{experiment}/{cue}/random"),
    params:
        samples=lambda w: xp(w)["random_samples"],
        seed=lambda w: xp(w)["random_seed"],
    log:
        "results/experiments/{experiment}/logs/random_{cue}.log",
    shell:
        "vnas arch random --samples {params.samples:q} --seed {params.seed:q} "
        "--out {output:q} 2> {log:q}"


rule experiment_train:
    """Retrain one method from scratch on fold 0's train+val cases (training seed 0 for
    every method, so that methods differ only in their architecture)."""
    conda:
        "../envs/vnas.yaml"
    input:
        data="results/experiments/{experiment}/{cue}/preprocessed",
        folds="results/experiments/{experiment}/{cue}/folds.json",
        arch=xp_arch_input,
    output:
        model="results/experiments/{experiment}/{cue}/models/{method}/model.pt",
    params:
        out="results/experiments/{experiment}/{cue}/models/{method}",
        arch=xp_arch,
        iterations=lambda w: xp(w)["train_iterations"],
        test_patch=lambda w: shape_arg(xp(w)["test_patch"]),
        training=xp_training_args,
    threads: lambda w: xp(w)["threads"]
    resources:
        gpu=1,
    benchmark:
        "results/experiments/{experiment}/benchmarks/train_{cue}_{method}.tsv"
    log:
        "results/experiments/{experiment}/logs/train_{cue}_{method}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas train --arch {params.arch:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--iterations {params.iterations:q} --test-patch {params.test_patch:q} --seed 0 "
        "{params.training:q} --force 2> {log:q}"


rule experiment_evaluate:
    """Sliding-window inference on fold 0's held-out test cases."""
    conda:
        "../envs/vnas.yaml"
    input:
        model="results/experiments/{experiment}/{cue}/models/{method}/model.pt",
        data="results/experiments/{experiment}/{cue}/preprocessed",
        folds="results/experiments/{experiment}/{cue}/folds.json",
        raw="results/experiments/{experiment}/{cue}/raw",
    output:
        metrics="results/experiments/{experiment}/{cue}/eval/{method}/metrics.csv",
    params:
        model=lambda w, input: os.path.dirname(input.model),
        out="results/experiments/{experiment}/{cue}/eval/{method}",
        device=config["device"],
    threads: lambda w: xp(w)["threads"]
    resources:
        gpu=1,
    benchmark:
        "results/experiments/{experiment}/benchmarks/evaluate_{cue}_{method}.tsv"
    log:
        "results/experiments/{experiment}/logs/evaluate_{cue}_{method}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas evaluate --model {params.model:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--raw {input.raw:q} --device {params.device:q} 2> {log:q}"


rule experiment_probe:
    """The investigation: the alpha/beta gradient signal of the supernet (vnas.search.probe),
    at the end of the searches' warm-up and after as many weight steps as a search has."""
    conda:
        "../envs/vnas.yaml"
    input:
        data="results/experiments/{experiment}/{cue}/preprocessed",
        folds="results/experiments/{experiment}/{cue}/folds.json",
    output:
        "results/experiments/{experiment}/{cue}/probe/probe.json",
    params:
        out="results/experiments/{experiment}/{cue}/probe",
        iterations=lambda w: xp(w)["search_iterations"],
        at=lambda w: [xp_warmup(w), xp(w)["search_iterations"]],
        steps=xp_arch_steps,
        lr=xp_arch_lr,
        batches=lambda w: xp(w)["probe_batches"],
        training=xp_training_args,
    threads: lambda w: xp(w)["threads"]
    resources:
        gpu=1,
    benchmark:
        "results/experiments/{experiment}/benchmarks/probe_{cue}.tsv"
    log:
        "results/experiments/{experiment}/logs/probe_{cue}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas experiment probe --preprocessed {input.data:q} "
        "--folds {input.folds:q} --fold 0 --out {params.out:q} --seed 0 "
        "--iterations {params.iterations:q} --at {params.at:q} --batches {params.batches:q} "
        "--arch-steps {params.steps:q} --compare-lr {params.lr:q} {params.training:q} "
        "--force 2> {log:q}"


rule experiment_summary:
    """Everything the report needs, in one JSON: codes, shares of 3D/P3D, agreement,
    held-out DSC with bootstrap intervals, and the jobs' measured costs."""
    conda:
        "../envs/vnas.yaml"
    input:
        evals=lambda w: expand(
            "results/experiments/{experiment}/{cue}/eval/{method}/metrics.csv",
            experiment=w.experiment,
            cue=xp(w)["cues"],
            method=xp_methods(w.experiment),
        ),
        searches=lambda w: expand(
            "results/experiments/{experiment}/{cue}/search/seed{seed}/diagnostics.json",
            experiment=w.experiment,
            cue=xp(w)["cues"],
            seed=xp(w)["search_seeds"],
        ),
        probes=lambda w: expand(
            "results/experiments/{experiment}/{cue}/probe/probe.json",
            experiment=w.experiment,
            cue=xp(w)["cues"],
        ),
    output:
        "results/experiments/{experiment}_summary.json",
    params:
        root="results/experiments/{experiment}",
        cues=lambda w: xp(w)["cues"],
        bootstrap=lambda w: xp(w)["bootstrap"],
    log:
        "results/experiments/{experiment}/logs/summary.log",
    shell:
        "vnas experiment summarize --root {params.root:q} --cues {params.cues:q} "
        "--bootstrap {params.bootstrap:q} --out {output:q} 2> {log:q}"
