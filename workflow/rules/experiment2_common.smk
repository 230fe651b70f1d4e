# Helpers and paths of the second known-answer experiment (experiment2.smk).

KA2 = "results/experiments/known_answer2"


def ka2():
    """The params.yaml block of the second known-answer experiment."""
    return config["experiments"]["known_answer2"]


def ka2_codes():
    """Step 1's ablation codes: all-2D, one group switched to 3D, all-3D."""
    return ["2d", *(f"3d-{g}" for g in ka2()["ablation_groups"]), "3d"]


def ka2_ablation_runs():
    """``(code, training seed)`` of every Step-1 retraining."""
    runs = [(code, 0) for code in ka2_codes()]
    networks = ["2d", "3d"] if ka2()["seed_mean_reference"] else ["2d"]  # amendment A9
    return runs + [(code, s) for code in networks for s in ka2()["noise_seeds"] if s != 0]


def ka2_training_args(wildcards):
    return experiment_training_args(ka2())


def ka2_candidate_args(wildcards):
    """Step 1's training flags, then a stability candidate's (A9; argparse keeps the last)."""
    cand = ka2()["stability"]["candidates"][wildcards.cand]
    return [
        *ka2_training_args(wildcards),
        *("--lr-floor", cand["lr_floor"]),
        "--dice-background" if cand["dice_background"] else "--no-dice-background",
    ]


#: A stability candidate's runs (A9): models/ and eval/ as Step 1's ablation/ has them.
KA2_STABILITY = f"{KA2}/stability/{{cand}}/{{cue}}"


def ka2_search_args(wildcards):
    """The first experiment's search settings plus PT scoring (the plan's Steps 2-3)."""
    cfg = ka2()
    return [
        *("--iterations", cfg["search_iterations"], "--pt-patches", cfg["pt_patches"]),
        *("--arch-lr-rule", cfg["arch_lr_rule"], "--arch-lr", config["arch_lr"]),
        *("--arch-weight-decay", config["arch_weight_decay"]),
        *("--warmup-fraction", cfg["warmup_fraction"]),
    ]


def ka2_step3_methods():
    """Step 3's retrained methods per cue: V-NAS and V-NAS-PT per seed, random codes, Mix."""
    cfg = ka2()
    seeds = cfg["search_seeds"]
    return [
        *(f"vnas-seed{s}" for s in seeds),
        *(f"vnas-pt-seed{s}" for s in seeds),
        *(f"random-{k}" for k in range(cfg["random_samples"])),
        "mix",
    ]


def ka2_step3_arch(wildcards):
    """`vnas train --arch` of a Step-3 method."""
    method, root = wildcards.method, f"{KA2}/{wildcards.cue}"
    if method.startswith("vnas-pt-seed"):
        return f"{root}/step3/codes/{method}.json"
    if method.startswith("vnas-seed"):
        return f"{root}/step3/search/seed{method.removeprefix('vnas-seed')}/arch.json"
    if method.startswith("random-"):
        return f"{root}/random/sample-{method.removeprefix('random-')}.json"
    return "mix"


def ka2_step3_arch_input(wildcards):
    arch = ka2_step3_arch(wildcards)
    if wildcards.method.startswith("random-"):
        return [f"{KA2}/{wildcards.cue}/random"]
    return [] if arch == "mix" else [arch]


def ka2_mixed_cell_source(wildcards):
    """The JSON naming the mixed cell: Step 1's truth table (Step 2) or A10's answers."""
    return f"{KA2}_step1.json" if wildcards.mixed == "mixed" else f"{KA2}_a10_answers.json"
