# The second known-answer experiment (EXPERIMENTS.md, "Known answer 2"; params.yaml
# `experiments.known_answer2`): not part of `all`, the demo or dvc.yaml.
#
# Data (synthesize, preprocess, split) comes from experiment.smk's rules with
# {experiment} = known_answer2. Step 1, the truth table by ablation:
#
#   snakemake --cores 2 --resources gpu=2 -- results/experiments/known_answer2_step1.json
#
# Per cue: all-2D, all-2D with one group (E1..E4, D1..D5) switched to 3D, and all-3D,
# each retrained (training seed 0; all-2D also with the noise seeds) and evaluated on
# fold 0's held-out test cases; then `vnas experiment truth-table`. Every job writes a
# Snakemake benchmark file (wall and CPU time) under benchmarks/.

wildcard_constraints:
    ka2code=r"2d|3d|3d-[ED]\d",
    ka2seed=r"\d+",
    cand=r"C\d+",
    mixed=r"mixed|mixed-a10",


rule ka2_ablation_code:
    """The arch JSON of one ablation code (α: a logit of 20 on the chosen op, so that its
    probability prints as 1)."""
    conda:
        "../envs/vnas.yaml"
    output:
        f"{KA2}/codes/{{ka2code}}.json",
    log:
        f"{KA2}/logs/code_{{ka2code}}.log",
    shell:
        "python workflow/scripts/ablation_code.py {wildcards.ka2code:q} {output:q} 2> {log:q}"


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
        f"{KA2}_step1.json",
    params:
        root=lambda w: KA2,
        cues=lambda w: ka2()["cues"],
        groups=lambda w: ka2()["ablation_groups"],
        seeds=lambda w: ka2()["noise_seeds"],
        bootstrap=lambda w: ka2()["bootstrap"],
        seed_mean=lambda w: ["--seed-mean"] if ka2()["seed_mean_reference"] else [],
    log:
        f"{KA2}/logs/step1.log",
    shell:
        "vnas experiment truth-table --root {params.root:q} --cues {params.cues:q} "
        "--groups {params.groups:q} --noise-seeds {params.seeds:q} {params.seed_mean:q} "
        "--bootstrap {params.bootstrap:q} --out {output:q} 2> {log:q}"


# Amendment A9 (training stability): all-2D and all-3D with the training seeds of
# `stability` under each candidate's training settings, evaluated like Step 1's runs:
#
#   snakemake --cores 2 --resources gpu=2 -- results/experiments/known_answer2_stability.json



use rule ka2_ablation_train as ka2_stability_train with:
    output:
        model=f"{KA2_STABILITY}/models/{{ka2code}}/seed{{ka2seed}}/model.pt",
    params:
        out=f"{KA2_STABILITY}/models/{{ka2code}}/seed{{ka2seed}}",
        iterations=lambda w: ka2()["train_iterations"],
        test_patch=lambda w: shape_arg(ka2()["test_patch"]),
        training=ka2_candidate_args,
    benchmark:
        f"{KA2}/benchmarks/stability_train_{{cand}}_{{cue}}_{{ka2code}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/stability_train_{{cand}}_{{cue}}_{{ka2code}}_seed{{ka2seed}}.log",


use rule ka2_ablation_evaluate as ka2_stability_evaluate with:
    input:
        model=f"{KA2_STABILITY}/models/{{ka2code}}/seed{{ka2seed}}/model.pt",
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
        raw=f"{KA2}/{{cue}}/raw",
    output:
        metrics=f"{KA2_STABILITY}/eval/{{ka2code}}/seed{{ka2seed}}/metrics.csv",
    params:
        model=lambda w, input: os.path.dirname(input.model),
        out=f"{KA2_STABILITY}/eval/{{ka2code}}/seed{{ka2seed}}",
        device=config["device"],
    benchmark:
        f"{KA2}/benchmarks/stability_evaluate_{{cand}}_{{cue}}_{{ka2code}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/stability_evaluate_{{cand}}_{{cue}}_{{ka2code}}_seed{{ka2seed}}.log",


rule ka2_stability:
    """A9's decision: per candidate and code, the seeds' mean held-out DSC, their spread,
    collapsed seeds, and the first accepted candidate."""
    conda:
        "../envs/vnas.yaml"
    input:
        evals=lambda w: [
            f"{KA2}/stability/{cand}/{st['cue']}/eval/{code}/seed{seed}/metrics.csv"
            for st in [ka2()["stability"]]
            for cand in st["candidates"]
            for code in st["codes"]
            for seed in st["seeds"]
        ],
        # C0, today's training: Step 1's all-2D seeds (A9: not re-run)
        step1="docs/experiments/known_answer2/step1.json",
    output:
        f"{KA2}_stability.json",
    params:
        root=f"{KA2}/stability",
        cue=lambda w: ka2()["stability"]["cue"],
        candidates=lambda w: list(ka2()["stability"]["candidates"]),
        codes=lambda w: ka2()["stability"]["codes"],
        seeds=lambda w: ka2()["stability"]["seeds"],
        max_spread=lambda w: ka2()["stability"]["max_spread"],
    log:
        f"{KA2}/logs/stability.log",
    shell:
        "vnas experiment stability --root {params.root:q} --cue {params.cue:q} "
        "--candidates {params.candidates:q} --codes {params.codes:q} --seeds {params.seeds:q} "
        "--max-spread {params.max_spread:q} --step1 {input.step1:q} --out {output:q} 2> {log:q}"


# Steps 2 and 3 run only if Step 1 found a known answer (H5; EXPERIMENTS.md):
#
#   snakemake --cores 2 --resources gpu=2 -- results/experiments/known_answer2_step2.json \
#       results/experiments/known_answer2_step3.json
#
# then, budget allowing, the exploratory hygiene re-run: known_answer2_step3_hygiene.json. Each
# step's JSON goes into EXPERIMENTS.md with `vnas experiment report2`.


rule ka2_mixed_search:
    """One search with every cell 2D but one, mixed: Step 1's cell (Step 2, folder
    `mixed`) or the cell of A10's cue-independent answer (folder `mixed-a10`)."""
    conda:
        "../envs/vnas.yaml"
    input:
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
        cell=ka2_mixed_cell_source,
    output:
        arch=f"{KA2}/{{cue}}/{{mixed}}/seed{{ka2seed}}/arch.json",
        pt=f"{KA2}/{{cue}}/{{mixed}}/seed{{ka2seed}}/perturbation.json",
    params:
        out=f"{KA2}/{{cue}}/{{mixed}}/seed{{ka2seed}}",
        search=ka2_search_args,
        training=ka2_training_args,
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/{{mixed}}_{{cue}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/{{mixed}}_{{cue}}_seed{{ka2seed}}.log",
    shell:
        "cell=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))[\"step2_cell\"])' "
        "{input.cell:q}) && OMP_NUM_THREADS={threads:q} vnas search "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--seed {wildcards.ka2seed:q} --fixed-code manual:2d/2d --mixed-cells \"$cell\" "
        "{params.search:q} {params.training:q} --no-progress --force 2> {log:q}"


rule ka2_search:
    """Step 3: one full search of fold 0, with PT scoring."""
    conda:
        "../envs/vnas.yaml"
    input:
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
    output:
        arch=f"{KA2}/{{cue}}/step3/search/seed{{ka2seed}}/arch.json",
        pt=f"{KA2}/{{cue}}/step3/search/seed{{ka2seed}}/perturbation.json",
    params:
        out=f"{KA2}/{{cue}}/step3/search/seed{{ka2seed}}",
        search=ka2_search_args,
        training=ka2_training_args,
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/search_{{cue}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/search_{{cue}}_seed{{ka2seed}}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas search --preprocessed {input.data:q} "
        "--folds {input.folds:q} --fold 0 --out {params.out:q} --seed {wildcards.ka2seed:q} "
        "{params.search:q} {params.training:q} --no-progress --force 2> {log:q}"


rule ka2_pt_code:
    """V-NAS-PT of one search: its perturbation code (amendment A5)."""
    conda:
        "../envs/vnas.yaml"
    input:
        f"{KA2}/{{cue}}/step3/search/seed{{ka2seed}}/perturbation.json",
    output:
        f"{KA2}/{{cue}}/step3/codes/vnas-pt-seed{{ka2seed}}.json",
    params:
        search=lambda w: f"{KA2}/{w.cue}/step3/search/seed{w.ka2seed}",
    log:
        f"{KA2}/logs/pt_code_{{cue}}_seed{{ka2seed}}.log",
    shell:
        "vnas aggregate --selection perturbation --out {output:q} {params.search:q} 2> {log:q}"


rule ka2_step3_train:
    """Retrain one Step-3 method from scratch (training seed 0) on fold 0's train+val."""
    conda:
        "../envs/vnas.yaml"
    input:
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
        arch=ka2_step3_arch_input,
    output:
        model=f"{KA2}/{{cue}}/step3/models/{{method}}/model.pt",
    params:
        out=f"{KA2}/{{cue}}/step3/models/{{method}}",
        arch=ka2_step3_arch,
        iterations=lambda w: ka2()["train_iterations"],
        test_patch=lambda w: shape_arg(ka2()["test_patch"]),
        training=ka2_training_args,
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/train_{{cue}}_step3_{{method}}.tsv"
    log:
        f"{KA2}/logs/train_{{cue}}_step3_{{method}}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas train --arch {params.arch:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--iterations {params.iterations:q} --test-patch {params.test_patch:q} --seed 0 "
        "{params.training:q} --no-progress --force 2> {log:q}"


rule ka2_step3_evaluate:
    conda:
        "../envs/vnas.yaml"
    input:
        model=f"{KA2}/{{cue}}/step3/models/{{method}}/model.pt",
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
        raw=f"{KA2}/{{cue}}/raw",
    output:
        metrics=f"{KA2}/{{cue}}/step3/eval/{{method}}/metrics.csv",
    params:
        model=lambda w, input: os.path.dirname(input.model),
        out=f"{KA2}/{{cue}}/step3/eval/{{method}}",
        device=config["device"],
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/evaluate_{{cue}}_step3_{{method}}.tsv"
    log:
        f"{KA2}/logs/evaluate_{{cue}}_step3_{{method}}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas evaluate --model {params.model:q} "
        "--preprocessed {input.data:q} --folds {input.folds:q} --fold 0 --out {params.out:q} "
        "--raw {input.raw:q} --device {params.device:q} 2> {log:q}"


rule ka2_step2:
    """Step 2's counts and H6's verdict per selection method."""
    conda:
        "../envs/vnas.yaml"
    input:
        step1=f"{KA2}_step1.json",
        searches=lambda w: [
            f"{KA2}/{cue}/mixed/seed{s}/perturbation.json"
            for cue in ka2()["cues"]
            for s in ka2()["search_seeds"]
        ],
    output:
        f"{KA2}_step2.json",
    params:
        root=lambda w: KA2,
        cues=lambda w: ka2()["cues"],
        seeds=lambda w: ka2()["search_seeds"],
    log:
        f"{KA2}/logs/step2.log",
    shell:
        "vnas experiment one-mixed-cell --root {params.root:q} --cues {params.cues:q} "
        "--seeds {params.seeds:q} --step1 {input.step1:q} --out {output:q} 2> {log:q}"


rule ka2_step3:
    """Step 3's H7-H9 (best manual: Step 1's best code, its evaluation reused)."""
    conda:
        "../envs/vnas.yaml"
    input:
        step1=f"{KA2}_step1.json",
        searches=lambda w: [
            f"{KA2}/{cue}/step3/search/seed{s}/perturbation.json"
            for cue in ka2()["cues"]
            for s in ka2()["search_seeds"]
        ],
        evals=lambda w: [
            f"{KA2}/{cue}/step3/eval/{m}/metrics.csv"
            for cue in ka2()["cues"]
            for m in ka2_step3_methods()
        ],
    output:
        f"{KA2}_step3.json",
    params:
        root=lambda w: KA2,
        cues=lambda w: ka2()["cues"],
        seeds=lambda w: ka2()["search_seeds"],
        random=lambda w: ka2()["random_samples"],
        bootstrap=lambda w: ka2()["bootstrap"],
    log:
        f"{KA2}/logs/step3.log",
    shell:
        "vnas experiment full-search --root {params.root:q} --cues {params.cues:q} "
        "--seeds {params.seeds:q} --step1 {input.step1:q} --random-samples {params.random:q} "
        "--bootstrap {params.bootstrap:q} --out {output:q} 2> {log:q}"


rule ka2_hygiene_search:
    """Exploratory: Step 3's search again without α weight decay and with the α gradient
    averaged over 4 val batches (no PT, no retraining)."""
    conda:
        "../envs/vnas.yaml"
    input:
        data=f"{KA2}/{{cue}}/preprocessed",
        folds=f"{KA2}/{{cue}}/folds.json",
    output:
        f"{KA2}/{{cue}}/hygiene/seed{{ka2seed}}/diagnostics.json",
    params:
        out=f"{KA2}/{{cue}}/hygiene/seed{{ka2seed}}",
        iterations=lambda w: ka2()["search_iterations"],
        warmup=lambda w: ka2()["warmup_fraction"],
        rule=lambda w: ka2()["arch_lr_rule"],
        lr=config["arch_lr"],
        training=ka2_training_args,
    threads: lambda w: ka2()["threads"]
    resources:
        gpu=1,
    benchmark:
        f"{KA2}/benchmarks/hygiene_{{cue}}_seed{{ka2seed}}.tsv"
    log:
        f"{KA2}/logs/hygiene_{{cue}}_seed{{ka2seed}}.log",
    shell:
        "OMP_NUM_THREADS={threads:q} vnas search --preprocessed {input.data:q} "
        "--folds {input.folds:q} --fold 0 --out {params.out:q} --seed {wildcards.ka2seed:q} "
        "--iterations {params.iterations:q} --warmup-fraction {params.warmup:q} "
        "--arch-lr-rule {params.rule:q} --arch-lr {params.lr:q} --arch-weight-decay 0 "
        "--arch-grad-batches 4 {params.training:q} --no-progress --force 2> {log:q}"


rule ka2_step3_hygiene:
    """Step 3's summary with the exploratory hygiene comparison added."""
    conda:
        "../envs/vnas.yaml"
    input:
        step3=f"{KA2}_step3.json",
        step1=f"{KA2}_step1.json",
        hygiene=lambda w: [
            f"{KA2}/{cue}/hygiene/seed{s}/diagnostics.json"
            for cue in ka2()["cues"]
            for s in ka2()["search_seeds"]
        ],
    output:
        f"{KA2}_step3_hygiene.json",
    params:
        root=lambda w: KA2,
        cues=lambda w: ka2()["cues"],
        seeds=lambda w: ka2()["search_seeds"],
        random=lambda w: ka2()["random_samples"],
        bootstrap=lambda w: ka2()["bootstrap"],
    log:
        f"{KA2}/logs/step3_hygiene.log",
    shell:
        "vnas experiment full-search --root {params.root:q} --cues {params.cues:q} "
        "--seeds {params.seeds:q} --step1 {input.step1:q} --random-samples {params.random:q} "
        "--bootstrap {params.bootstrap:q} --hygiene --out {output:q} 2> {log:q}"


# Amendment A10 (EXPERIMENTS.md): after Step 1's re-run found no cue-dependent answer, the
# cell whose answer (3D beats 2D) holds under both cues, searched alone, 5 seeds per cue:
#
#   snakemake --cores 2 --resources gpu=2 -- results/experiments/known_answer2_a10.json


rule ka2_a10_answers:
    """A10's rule on Step 1's truth table: the groups with a cue-independent answer."""
    conda:
        "../envs/vnas.yaml"
    input:
        f"{KA2}_step1.json",
    output:
        f"{KA2}_a10_answers.json",
    log:
        f"{KA2}/logs/a10_answers.log",
    shell:
        "vnas experiment cue-independent --step1 {input:q} --out {output:q} 2> {log:q}"


rule ka2_a10:
    """A10's verdict per selection method (argmax, PT) on the one-mixed-cell searches."""
    conda:
        "../envs/vnas.yaml"
    input:
        answers=f"{KA2}_a10_answers.json",
        searches=lambda w: [
            f"{KA2}/{cue}/mixed-a10/seed{s}/perturbation.json"
            for cue in ka2()["cues"]
            for s in ka2()["search_seeds"]
        ],
    output:
        f"{KA2}_a10.json",
    params:
        root=lambda w: KA2,
        cues=lambda w: ka2()["cues"],
        seeds=lambda w: ka2()["search_seeds"],
    log:
        f"{KA2}/logs/a10.log",
    shell:
        "vnas experiment a10 --root {params.root:q} --cues {params.cues:q} "
        "--seeds {params.seeds:q} --answers {input.answers:q} --out {output:q} 2> {log:q}"
