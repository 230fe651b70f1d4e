# Per-method, per-fold retraining from scratch (GPU jobs) and sliding-window evaluation.


rule train:
    """Train one method on train+val of one fold."""
    conda:
        "../envs/vnas.yaml"
    input:
        data="data/preprocessed/{dataset}",
        folds="results/{dataset}/folds.json",
        arch=train_arch_input,
        reuse=reused_model,
    output:
        model="results/{dataset}/models/{method}/fold{fold}/model.pt",
        config="results/{dataset}/models/{method}/fold{fold}/config.json",
    params:
        out="results/{dataset}/models/{method}/fold{fold}",
        arch=lambda w: method_arch(w.dataset, w.method),
        # the declared settings (workflow/scripts/rule_settings.py), one JSON record
        settings=lambda w: rule_settings("train", config, w),
        workers=lambda w: threads_of(w) - 1,
        reuse=lambda w, input: [a for p in input.reuse for a in ("--reuse", os.path.dirname(p))],
    threads: lambda w: threads_of(w)
    resources:
        gpu=1,
    benchmark:
        "results/benchmarks/{dataset}/train/{method}_fold{fold}.tsv"
    log:
        "results/logs/{dataset}/train_{method}_fold{fold}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas train --settings {params.settings:q} "
        "--arch {params.arch:q} --preprocessed {input.data:q} --folds {input.folds:q} "
        "--fold {wildcards.fold:q} --out {params.out:q} --workers {params.workers:q} "
        "{params.reuse:q} --force 2> {log:q}"


rule evaluate:
    """Sliding-window inference on the fold's test cases; DSC, NSD and HD95 per case,
    against the raw labels in their original geometry (--raw)."""
    conda:
        "../envs/vnas.yaml"
    input:
        model="results/{dataset}/models/{method}/fold{fold}/model.pt",
        data="data/preprocessed/{dataset}",
        folds="results/{dataset}/folds.json",
        raw=raw_input,
    output:
        metrics="results/{dataset}/eval/{method}/fold{fold}/metrics.csv",
    params:
        model=lambda w, input: os.path.dirname(input.model),
        out="results/{dataset}/eval/{method}/fold{fold}",
        **rule_params("evaluate", config),  # device, overlap, nsd
    threads: lambda w: threads_of(w)
    resources:
        gpu=1,
    benchmark:
        "results/benchmarks/{dataset}/evaluate/{method}_fold{fold}.tsv"
    log:
        "results/logs/{dataset}/evaluate_{method}_fold{fold}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas evaluate --model {params.model:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold {wildcards.fold:q} "
        "--out {params.out:q} --raw {input.raw:q} --overlap {params.overlap:q} "
        "--nsd-tolerance {params.nsd:q} --device {params.device:q} 2> {log:q}"


rule ensemble:
    """The folds' models of one method as one ensemble folder: `vnas predict --model
    results/{dataset}/ensemble/{method}` averages them, as nnU-Net predicts with its folds."""
    conda:
        "../envs/vnas.yaml"
    input:
        lambda w: expand(
            "results/{dataset}/models/{method}/fold{fold}/model.pt",
            dataset=w.dataset,
            method=w.method,
            fold=folds(w.dataset),
        ),
    output:
        "results/{dataset}/ensemble/{method}/ensemble.json",
    params:
        models=lambda w, input: [os.path.dirname(p) for p in input],
        out=lambda w, output: os.path.dirname(output[0]),
    benchmark:
        "results/benchmarks/{dataset}/ensemble/{method}.tsv"
    log:
        "results/logs/{dataset}/ensemble_{method}.log",
    shell:
        "vnas ensemble --model {params.models:q} --out {params.out:q} 2> {log:q}"


rule predict_test:
    """The dataset's test images (`test_images`, or RAW/imagesTs) segmented by one table
    method's fold ensemble, as `nnUNetv2_predict -f 0 1 2 3` would: one label NIfTI per
    image, on its grid."""
    conda:
        "../envs/vnas.yaml"
    input:
        ensemble="results/{dataset}/ensemble/{method}/ensemble.json",
        images=test_images_input,
    output:
        directory("results/{dataset}/predictions/{method}"),
    params:
        model=lambda w, input: os.path.dirname(input.ensemble),
        images=lambda w: test_images(w.dataset),
        **rule_params("predict_test", config),  # device
    threads: lambda w: threads_of(w)
    resources:
        gpu=1,
    benchmark:
        "results/benchmarks/{dataset}/predict_test/{method}.tsv"
    log:
        "results/logs/{dataset}/predict_test_{method}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas predict --model {params.model:q} "
        "--input {params.images:q} --out {output:q} --device {params.device:q} "
        "--no-progress 2> {log:q}"
