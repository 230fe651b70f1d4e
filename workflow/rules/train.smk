# Per-method, per-fold retraining from scratch (GPU jobs) and sliding-window evaluation.


rule train:
    """Train one method on train+val of one fold."""
    conda:
        "../envs/vnas.yaml"
    input:
        data="data/preprocessed/{dataset}",
        folds="results/{dataset}/folds.json",
        arch=train_arch_input,
    output:
        model="results/{dataset}/models/{method}/fold{fold}/model.pt",
        config="results/{dataset}/models/{method}/fold{fold}/config.json",
    params:
        out="results/{dataset}/models/{method}/fold{fold}",
        arch=lambda w: method_arch(w.dataset, w.method),
        iterations=lambda w: ds(w)["train_iterations"],
        width=lambda w: ds(w)["width"],
        patch=lambda w: shape_arg(ds(w)["patch"]),
        test_patch=lambda w: shape_arg(ds(w)["test_patch"]),
        batch=lambda w: ds(w)["batch_size"],
        optimiser=optimiser_args(),
        loss=lambda w: ds(w)["loss"],
        workers=lambda w: threads_of(w) - 1,
    threads: lambda w: threads_of(w)
    resources:
        gpu=1,
    log:
        "results/logs/{dataset}/train_{method}_fold{fold}.log",
    shell:
        "OMP_NUM_THREADS={threads} vnas train --arch {params.arch} "
        "--preprocessed {input.data} --folds {input.folds} --fold {wildcards.fold} "
        "--out {params.out} --iterations {params.iterations} --width {params.width} "
        "--patch {params.patch} --test-patch {params.test_patch} "
        "--batch-size {params.batch} {params.optimiser} --loss {params.loss} --workers {params.workers} --force "
        "2> {log}"


rule evaluate:
    """Sliding-window inference on the fold's test cases; DSC, NSD and HD95 per case,
    against the raw labels in their original geometry (--raw)."""
    conda:
        "../envs/vnas.yaml"
    input:
        model="results/{dataset}/models/{method}/fold{fold}/model.pt",
        data="data/preprocessed/{dataset}",
        folds="results/{dataset}/folds.json",
        raw=raw_dir,
    output:
        metrics="results/{dataset}/eval/{method}/fold{fold}/metrics.csv",
    params:
        model=lambda w, input: os.path.dirname(input.model),
        out="results/{dataset}/eval/{method}/fold{fold}",
        overlap=lambda w: ds(w)["overlap"],
        nsd=lambda w: " ".join(str(t) for t in ds(w)["nsd_tolerance_mm"]),
        device=config["device"],
    threads: lambda w: threads_of(w)
    resources:
        gpu=1,
    log:
        "results/logs/{dataset}/evaluate_{method}_fold{fold}.log",
    shell:
        "OMP_NUM_THREADS={threads} vnas evaluate --model {params.model} "
        "--preprocessed {input.data} --folds {input.folds} --fold {wildcards.fold} "
        "--out {params.out} --raw {input.raw:q} --overlap {params.overlap} "
        "--nsd-tolerance {params.nsd} --device {params.device} 2> {log}"
