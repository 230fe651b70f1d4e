# Shared helpers: dataset settings, the method registry, and the missing-data message.

import os
import sys
from pathlib import Path

import jsonschema
import yaml


def check_config(config, schema_path):
    """Validate the merged config; a bad key or value stops with one line naming it."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(config)
    )
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        sys.exit(f"vnas: params.yaml: {where}: {error.message}")
    for where, problem in config_problems(config):
        sys.exit(f"vnas: params.yaml: {where}: {problem}")


# Presets for datasets the paper does not use: their HU window comes from params.yaml.
PRESETS_WITHOUT_WINDOW = ("nnunet", "msd")


def config_problems(config):
    """What the schema cannot say: names that must refer to a configured dataset, and
    where a synthetic dataset is written."""
    names = list(config["datasets"])
    if config["dataset"] not in names:
        yield "dataset", f"{config['dataset']!r} is not one of the datasets ({', '.join(names)})"
    for name, cfg in config["datasets"].items():
        for other in cfg["transfer_from"]:
            if other not in names or other == name:
                yield (
                    f"datasets.{name}.transfer_from",
                    f"{other!r} is not another dataset ({', '.join(names)})",
                )
        if cfg["preset"] in PRESETS_WITHOUT_WINDOW and cfg.get("hu_window") is None:
            yield (
                f"datasets.{name}.hu_window",
                f"preset {cfg['preset']!r} has no HU window: set hu_window: [LOW, HIGH] "
                "(`vnas plan --raw DIR` proposes one from the data)",
            )
        if "synth" in cfg and cfg["raw"] != f"data/raw/{name}":
            yield (
                f"datasets.{name}.raw",
                f"a synthetic dataset is written to data/raw/{name} (rule synthesize); "
                f"set raw: data/raw/{name}",
            )


check_config(config, Path(workflow.basedir) / "workflow/schemas/params.schema.yaml")

DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    fold=r"\d+",
    method=r"[A-Za-z0-9-]+",

# Where each real dataset comes from and the layout vnas reads (docs/conventions.md).
DOWNLOAD_HELP = {
    "nih": (
        "the NIH Pancreas-CT collection from TCIA (DICOM series, PANCREAS_0001/...) and "
        "its label folder (label0001.nii.gz ...), both under {raw}/"
    ),
    "lung": (
        "MSD Task06_Lung from medicaldecathlon.com, unpacked so that {raw}/dataset.json, "
        "{raw}/imagesTr/ and {raw}/labelsTr/ exist"
    ),
    "pancreas": (
        "MSD Task07_Pancreas from medicaldecathlon.com, unpacked so that "
        "{raw}/dataset.json, {raw}/imagesTr/ and {raw}/labelsTr/ exist"
    ),
    "nnunet": "an nnU-Net v2 raw dataset (dataset.json, imagesTr/, labelsTr/) at {raw}/",
    "msd": "an MSD task (dataset.json, imagesTr/, labelsTr/) at {raw}/",
}


def ds(wildcards_or_name):
    """The params.yaml block of a dataset (by name or by the wildcard)."""
    name = getattr(wildcards_or_name, "dataset", wildcards_or_name)
    return config["datasets"][name]


def is_synthetic(name):
    return "synth" in ds(name)


def raw_dir(wildcards):
    """The raw folder of a real dataset; stops with one readable message if absent."""
    cfg = ds(wildcards)
    raw = cfg["raw"]
    if not is_synthetic(wildcards.dataset) and not os.path.isdir(raw):
        what = DOWNLOAD_HELP.get(cfg["preset"], "the dataset")
        # One readable line and a clean exit: a WorkflowError would come wrapped in an
        # InputFunctionException with a traceback.
        sys.exit(
            f"vnas: raw data for dataset '{wildcards.dataset}' not found at {raw}/. "
            f"Download {what.format(raw=raw)}, or set datasets.{wildcards.dataset}.raw "
            "in params.yaml. vnas never downloads data and never substitutes the "
            "synthetic phantom."
        )
    return raw


def preprocess_overrides(wildcards):
    """`--hu-window LO HI` and `--spacing SZ SY SX` where the dataset sets them."""
    cfg = ds(wildcards)
    args = []
    if cfg.get("hu_window") is not None:
        args += ["--hu-window", *(str(v) for v in cfg["hu_window"])]
    if cfg.get("spacing") is not None:
        args += ["--spacing", *(str(v) for v in cfg["spacing"])]
    return args


def folds(name):
    return range(ds(name)["folds"])


def shape_arg(shape):
    """A shape as separate arguments (the rules quote each with `:q`)."""
    return [str(s) for s in shape]


# --- methods -----------------------------------------------------------------------
# A method id is path-safe; it maps to the `vnas train --arch` value, the row name and
# the paper's "Categorization" column.
BASELINES = {
    "mix": ("mix", "Mix", "Mix"),
    "unet3d": ("unet3d", "3D U-Net", "3D"),
    "vnet": ("vnet", "V-Net", "3D"),
}


def table_methods(name):
    """Method ids of the main table of a dataset, in row order."""
    cfg = ds(name)
    ids = []
    if "vnas" in cfg["methods"]:
        ids.append("vnas")
    ids += [f"vnas-from-{other}" for other in cfg["transfer_from"]]
    if cfg["paper_preset"]:
        ids.append(cfg["paper_preset"])
    ids += [m for m in cfg["methods"] if m != "vnas"]
    return ids


def manual_methods(name):
    return [f"manual-{enc}-{dec}" for enc, dec in (m.split(os.sep) for m in ds(name)["manual"])]


def random_methods(name):
    """One method id per random architecture (the table's "Random (n=N)" row)."""
    return [f"random-{k}" for k in range(ds(name)["random_samples"])]


def all_methods(name):
    """Every method trained and evaluated for a dataset."""
    return table_methods(name) + random_methods(name) + manual_methods(name)


def method_arch(dataset, method):
    """The --arch argument of `vnas train` for a method id."""
    if method == "vnas":
        return f"results/{dataset}/arch.json"
    if method.startswith("vnas-from-"):
        return f"results/{method.removeprefix('vnas-from-')}/arch.json"
    if method.startswith("manual-"):
        enc, dec = method.removeprefix("manual-").split("-")
        return f"manual:{enc}/{dec}"
    if method.startswith("random-"):
        return f"results/{dataset}/random/sample-{method.removeprefix('random-')}.json"
    if method in BASELINES:
        return BASELINES[method][0]
    return method  # a published preset such as nih-paper


def method_label(dataset, method):
    """(row name, category) for the tables."""
    if method == "vnas":
        return "V-NAS", "Search"
    if method.startswith("vnas-from-"):
        return f"V-NAS-{method.removeprefix('vnas-from-').upper()}", "Search (transfer)"
    if method.startswith("manual-"):
        enc, dec = method.removeprefix("manual-").split("-")
        return f"{enc.upper()}/{dec.upper()}", "manual"
    if method.startswith("random-"):
        return f"Random sample {method.removeprefix('random-')}", "Random"
    if method in BASELINES:
        return BASELINES[method][1], BASELINES[method][2]
    return f"V-NAS ({method}, published code)", "Search (published)"


def train_arch_input(wildcards):
    """The file (or, for a random code, the folder of codes) `vnas train --arch` reads."""
    if wildcards.method.startswith("random-"):
        return [f"results/{wildcards.dataset}/random"]
    arch = method_arch(wildcards.dataset, wildcards.method)
    return [arch] if arch.endswith(".json") else []


def threads_of(name):
    return ds(name).get("threads", 1)


# Multi-word arguments are lists: a rule's `{params.x:q}` quotes each word on its own.


def optimiser_args():
    return [
        *("--lr", config["lr"], "--momentum", config["momentum"]),
        *("--weight-decay", config["weight_decay"], "--poly-power", config["poly_power"]),
        *("--seed", config["seed"], "--device", config["device"]),
    ]


def eval_root(wildcards, input):
    """results/{dataset}/eval, from the first METHOD/foldK/metrics.csv input."""
    return str(Path(input[0]).parents[2])


def eval_inputs(dataset, methods):
    return expand(
        "results/{dataset}/eval/{method}/fold{fold}/metrics.csv",
        dataset=dataset,
        method=methods,
        fold=folds(dataset),
    )


def method_args(dataset, methods):
    """`--method ID NAME CATEGORY` arguments for `vnas table`."""
    args = []
    for method in methods:
        args += ["--method", method, *method_label(dataset, method)]
    return args


def report_tables(name):
    """The main table, and the manual grid where the dataset configures one."""
    tables = [f"results/tables/{name}.md"]
    if ds(name)["manual"]:
        tables.append(f"results/tables/{name}_manual.md")
    return tables


#: The figures `vnas figures` draws (rule figures), in the report's order.
FIGURES = ("overlays", "curves", "arch_probabilities", "search_trajectories", "search_entropy")


def report_inputs(name):
    """The inputs of `vnas report` for a dataset: tables, figures, searches, codes."""
    return {
        "tables": report_tables(name),
        "figures": expand(
            "results/figures/{dataset}/{figure}.png",
            dataset=name,
            figure=FIGURES,
        ),
        "diagnostics": f"results/{name}/diagnostics.json",
        "arch": f"results/{name}/arch.json",
        "searches": expand(
            "results/{dataset}/search/fold{fold}/arch.json", dataset=name, fold=folds(name)
        ),
    }


def benchmark_files(name):
    """The Snakemake `benchmark:` files (wall and CPU time per job) of every job that a
    dataset's tables and figures need, one folder per rule (`vnas report --benchmarks`)."""
    cfg, root = ds(name), f"results/benchmarks/{name}"
    singles = ["preprocess", "split", "aggregate", "table", "figures"]
    singles += ["synthesize"] if "synth" in cfg else []
    singles += ["random_archs"] if cfg["random_samples"] else []
    singles += ["table_manual"] if cfg["manual"] else []
    jobs = [f"{root}/{step}/job.tsv" for step in singles]
    jobs += expand("{root}/search/fold{fold}.tsv", root=root, fold=folds(name))
    jobs += expand(
        "{root}/{step}/{method}_fold{fold}.tsv",
        root=root,
        step=("train", "evaluate"),
        method=all_methods(name),
        fold=folds(name),
    )
    return jobs


def random_args(name):
    """`--random ID...` for `vnas table`: the random architectures' method ids."""
    ids = random_methods(name)
    return ["--random", *ids] if ids else []


def warmup_iterations(wildcards):
    """Iterations before the first alpha/beta step: warmup_fraction of the search."""
    cfg = ds(wildcards)
    return round(cfg["warmup_fraction"] * cfg["search_iterations"])


# --- known-answer experiments (rules/experiment.smk) --------------------------------


def xp(wildcards):
    """The params.yaml block of an experiment."""
    return config["experiments"][wildcards.experiment]


def xp_methods(name):
    """Method ids of an experiment: one V-NAS per search seed, Mix, the random codes and
    the manual configurations."""
    cfg = config["experiments"][name]
    return [
        *(f"vnas-seed{s}" for s in cfg["search_seeds"]),
        "mix",
        *(f"random-{k}" for k in range(cfg["random_samples"])),
        *(f"manual-{enc}-{dec}" for enc, dec in (m.split(os.sep) for m in cfg["manual"])),
    ]


def xp_arch(wildcards):
    """`vnas train --arch` of an experiment's method."""
    method = wildcards.method
    root = f"results/experiments/{wildcards.experiment}/{wildcards.cue}"
    if method.startswith("vnas-seed"):
        return f"{root}/search/seed{method.removeprefix('vnas-seed')}/arch.json"
    if method.startswith("random-"):
        return f"{root}/random/sample-{method.removeprefix('random-')}.json"
    if method.startswith("manual-"):
        enc, dec = method.removeprefix("manual-").split("-")
        return f"manual:{enc}/{dec}"
    return method  # mix


def xp_arch_input(wildcards):
    method = wildcards.method
    root = f"results/experiments/{wildcards.experiment}/{wildcards.cue}"
    if method.startswith("random-"):
        return [f"{root}/random"]
    return [xp_arch(wildcards)] if method.startswith("vnas-seed") else []


def xp_warmup(wildcards):
    cfg = xp(wildcards)
    return round(cfg["warmup_fraction"] * cfg["search_iterations"])


def xp_arch_lr(wildcards):
    """The alpha/beta learning rate the experiment's searches use (after their rule)."""
    from vnas.search.arch_lr import scaled_arch_lr

    cfg = xp(wildcards)
    steps = cfg["search_iterations"] - xp_warmup(wildcards)
    return scaled_arch_lr(cfg["arch_lr_rule"], config["arch_lr"], steps)


def xp_training_args(wildcards):
    cfg = xp(wildcards)
    return [
        *("--width", cfg["width"], "--patch", *shape_arg(cfg["patch"])),
        *("--batch-size", cfg["batch_size"], "--loss", cfg["loss"]),
        *("--lr", config["lr"], "--momentum", config["momentum"]),
        *("--weight-decay", config["weight_decay"], "--poly-power", config["poly_power"]),
        *("--device", config["device"], "--workers", cfg["threads"] - 1),
    ]
