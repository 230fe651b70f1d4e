# The second known-answer experiment (EXPERIMENTS.md, "Known answer 2"; params.yaml
# `experiments.known_answer2`): not part of `all`, the demo or dvc.yaml.
#
# Data (synthesize, preprocess, split) comes from experiment.smk's rules with
# {experiment} = known_answer2. Step 1, the truth table by ablation:
#
#   snakemake --cores 2 --resources gpu=2 -- results/experiments/known_answer2/step1.json
#
# Per cue: all-2D, all-2D with one group (E1..E4, D1..D5) switched to 3D, and all-3D,
# each retrained (training seed 0; all-2D also with the noise seeds) and evaluated on
# fold 0's held-out test cases; then `vnas experiment truth-table`. Every job writes a
# Snakemake benchmark file (wall and CPU time) under benchmarks/.

KA2 = "results/experiments/known_answer2"


wildcard_constraints:
    ka2code=r"2d|3d|3d-[ED]\d",
    ka2seed=r"\d+",


def ka2():
    """The params.yaml block of the second known-answer experiment."""
    return config["experiments"]["known_answer2"]


def ka2_codes():
    """Step 1's ablation codes: all-2D, one group switched to 3D, all-3D."""
    return ["2d", *(f"3d-{g}" for g in ka2()["ablation_groups"]), "3d"]


def ka2_ablation_runs():
    """``(code, training seed)`` of every Step-1 retraining."""
    runs = [(code, 0) for code in ka2_codes()]
    return runs + [("2d", s) for s in ka2()["noise_seeds"] if s != 0]


def ka2_training_args(wildcards):
    cfg = ka2()
    return [
        *("--width", cfg["width"], "--patch", *shape_arg(cfg["patch"])),
        *("--batch-size", cfg["batch_size"], "--loss", cfg["loss"]),
        *("--lr", config["lr"], "--momentum", config["momentum"]),
        *("--weight-decay", config["weight_decay"], "--poly-power", config["poly_power"]),
        *("--device", config["device"], "--workers", cfg["threads"] - 1),
    ]


rule ka2_ablation_code:
    """The arch JSON of one ablation code (α: a logit of 20 on the chosen op, so that its
    probability prints as 1)."""
    output:
        f"{KA2}/codes/{{ka2code}}.json",
    run:
        import numpy as np

        from vnas.report.truth_table import group_code
        from vnas.space.genotype import NUM_OPS, write_arch_json

        encoder, decoder = group_code(wildcards.ka2code)
        write_arch_json(
            output[0],
            20 * np.eye(NUM_OPS)[encoder],
            20 * np.eye(NUM_OPS)[decoder],
            command="experiment ablation-code",
            extra={"ablation": wildcards.ka2code},
        )


rule ka2_ablation_train:
    """Retrain one ablation code from scratch on fold 0's train+val cases."""
    conda:
        "../envs/vnas.yaml"
    input:
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
        arch=f"{KA2}/codes/{{ka2code}}.json",
    output:
        model=f"{KA2}/{{cue}}/ablation/models/{{ka2code}}/seed{{ka2seed}}/model.pt",
    params:
        out=f"{KA2}/{{cue}}/ablation/models/{{ka2code}}/seed{{ka2seed}}",
        iterations=lambda w: ka2()["train_iterations"],
        test_patch=lambda w: shape_arg(ka2()["test_patch"]),
        training=ka2_training_args,
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/train_{{cue}}_{{ka2code}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/train_{{cue}}_{{ka2code}}_seed{{ka2seed}}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas train --arch {input.arch:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--iterations {params.iterations:q} --test-patch {params.test_patch:q} "
        "--seed {wildcards.ka2seed:q} {params.training:q} --no-progress --force 2> {log:q}"


rule ka2_ablation_evaluate:
    """Sliding-window inference of one ablation model on fold 0's held-out test cases."""
    conda:
        "../envs/vnas.yaml"
    input:
        model=f"{KA2}/{{cue}}/ablation/models/{{ka2code}}/seed{{ka2seed}}/model.pt",
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
        raw=f"{KA2}/{{cue}}/raw",
    output:
        metrics=f"{KA2}/{{cue}}/ablation/eval/{{ka2code}}/seed{{ka2seed}}/metrics.csv",
    params:
        model=lambda w, input: os.path.dirname(input.model),
        out=f"{KA2}/{{cue}}/ablation/eval/{{ka2code}}/seed{{ka2seed}}",
        device=config["device"],
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/evaluate_{{cue}}_{{ka2code}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/evaluate_{{cue}}_{{ka2code}}_seed{{ka2seed}}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas evaluate --model {params.model:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--raw {input.raw:q} --device {params.device:q} 2> {log:q}"


rule ka2_step1:
    """Step 1's truth table and H5's verdict, from the evaluations."""
    conda:
        "../envs/vnas.yaml"
    input:
        lambda w: [
            f"{KA2}/{cue}/ablation/eval/{code}/seed{seed}/metrics.csv"
            for cue in ka2()["cues"]
            for code, seed in ka2_ablation_runs()
        ],
    output:
        f"{KA2}/step1.json",
    params:
        root=KA2,
        cues=lambda w: ka2()["cues"],
        groups=lambda w: ka2()["ablation_groups"],
        seeds=lambda w: ka2()["noise_seeds"],
        bootstrap=lambda w: ka2()["bootstrap"],
    log:
        f"{KA2}/logs/step1.log",
    shell:
        "vnas experiment truth-table --root {params.root:q} --cues {params.cues:q} "
        "--groups {params.groups:q} --noise-seeds {params.seeds:q} "
        "--bootstrap {params.bootstrap:q} --out {output:q} 2> {log:q}"
