# Shared helpers: dataset settings, the method registry, and the missing-data message.

import functools
import os
import sys
from pathlib import Path

import jsonschema
import yaml

# What each rule reads, declared once (workflow/scripts/rule_settings.py; dvc_yaml.py reads
# the same declarations for the DVC stages): a rule's settings are its `params:`, a
# `--settings` record (rule_settings) or one entry each (rule_params).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))
from rule_settings import rule_params, rule_settings, search_schedule as _search_schedule
from rule_settings import sgd_flags as _sgd_flags
from rule_settings import words as shape_arg  # a shape as separate arguments (`:q` quotes each)
from rule_settings import uses_perturbation as _uses_perturbation


def _holds(node, keys):
    """Whether the nested mapping ``node`` has the key path ``keys``."""
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def config_source(keys, files, cli):
    """Where the key path ``keys`` is set: `--config` (``cli``) if there, else the last of
    ``files`` (in the order Snakemake merges them) that holds it."""
    if _holds(dict(cli), keys):
        return "--config"
    for name in reversed(files):
        try:
            if _holds(yaml.safe_load(Path(name).read_text()), keys):
                return name
        except (OSError, yaml.YAMLError):
            continue
    return files[0]


def check_config(config, schema_path, files, cli):
    """Validate the merged config; a bad key or value stops with one line naming it and
    the file that sets it (params.yaml, or a `--configfile` such as a `vnas plan` block)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(config)
    )
    problems = []
    if error is not None:
        keys = [str(p) for p in error.absolute_path]
        problems.append((".".join(keys) or "(top level)", error.message))
    problems += list(config_problems(config))
    for where, problem in problems[:1]:
        source = config_source(where.split(".") if where != "(top level)" else [], files, cli)
        sys.exit(f"vnas: {source}: {where}: {problem}")


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
        yield from patch_problems(name, cfg)
        if "synth" in cfg and cfg["raw"] != f"data/raw/{name}":
            yield (
                f"datasets.{name}.raw",
                f"a synthetic dataset is written to data/raw/{name} (rule synthesize); "
                f"set raw: data/raw/{name}",
            )


def patch_problems(name, cfg):
    """Patches every network of the dataset takes (each axis a multiple of the network's
    multiple): found at the dry run, not when a search or training job starts."""
    from vnas.space.models import patch_multiple

    kinds = {"search": "V-NAS", **{m: m for m in cfg["methods"] if m in ("unet3d", "vnet")}}
    for key in ("patch", "test_patch"):
        for kind, network in kinds.items():
            multiple = patch_multiple(kind)
            if any(p % m for p, m in zip(cfg[key], multiple)):
                yield (
                    f"datasets.{name}.{key}",
                    f"{'x'.join(map(str, cfg[key]))} does not fit the {network} network: "
                    f"each axis must be a multiple of {'x'.join(map(str, multiple))}",
                )
                break


check_config(
    config,
    Path(workflow.basedir) / "workflow/schemas/params.schema.yaml",
    ["params.yaml", *workflow.overwrite_configfiles],  # in the order Snakemake merges them
    workflow.config_settings.config,
)

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


def raw_input(wildcards):
    """The raw folder as an input whose mtime does not count (`ancient`): a real dataset's
    identity is its manifest (`raw_identity`), so that touching the folder, or adding or
    deleting a file vnas does not read, reruns nothing. A synthetic dataset's folder is
    the `synthesize` rule's output and stays an ordinary input."""
    raw = raw_dir(wildcards)
    return raw if is_synthetic(wildcards.dataset) else ancient(raw)


@functools.cache
def _manifest_digest(raw):
    from vnas.data.manifest import manifest_digest

    return manifest_digest(raw)


def raw_identity(wildcards):
    """The digest of the files vnas reads from a real dataset's raw folder (names, sizes,
    mtimes: vnas.data.manifest), a `params:` entry of `preprocess`: when it changes,
    Snakemake reruns preprocessing (and so everything after it)."""
    if is_synthetic(wildcards.dataset):
        return ""
    return _manifest_digest(raw_dir(wildcards))


def test_images(name):
    """The folder of unlabelled images the pipeline predicts (in predict_test):
    `test_images` in params.yaml, else RAW/imagesTs where it exists (a synthetic dataset
    always has one: `vnas synth` writes it); None if neither."""
    cfg = ds(name)
    if cfg.get("test_images"):
        return cfg["test_images"]
    imagesTs = f"{cfg['raw']}/imagesTs"
    return imagesTs if is_synthetic(name) or os.path.isdir(imagesTs) else None


def test_predictions(name):
    """The prediction folders of a dataset's test images, one per table method (none
    without test images)."""
    if test_images(name) is None:
        return []
    return expand("results/{d}/predictions/{m}", d=name, m=table_methods(name))


def test_images_input(wildcards):
    """The test folder as an input: inside the raw folder, that folder (`raw_input`: the
    synthetic one is written by `synthesize`); elsewhere itself, its mtime not counting."""
    folder = test_images(wildcards.dataset)
    if folder.startswith(ds(wildcards)["raw"] + "/"):
        return raw_input(wildcards)
    return ancient(folder)


def folds(name):
    return range(ds(name)["folds"])


# --- methods -----------------------------------------------------------------------
# A method id is path-safe; it maps to the `vnas train --arch` value, the row name and
# the paper's "Categorization" column.
BASELINES = {
    "mix": ("mix", "Mix", "Mix"),
    "unet3d": ("unet3d", "3D U-Net", "3D"),
    "vnet": ("vnet", "V-Net", "3D"),
}


#: The paper's names of its published codes (Tables 1-3), for their rows.
PAPER_NAMES = {"nih-paper": "V-NAS-NIH", "lung-paper": "V-NAS-Lung", "pancreas-paper": "V-NAS-Pancreas"}


def table_methods(name):
    """Method ids of the main table of a dataset, in row order."""
    cfg = ds(name)
    ids = []
    if "vnas" in cfg["methods"]:
        ids.append("vnas")
        if uses_perturbation(name):
            ids.append("vnas-pt")
    ids += [f"vnas-from-{other}" for other in cfg["transfer_from"]]
    ids += cfg["paper_preset"]
    ids += [m for m in cfg["methods"] if m != "vnas"]
    return ids


def uses_perturbation(name):
    """Whether a dataset's searches also score their ops by perturbation (its
    `selection: perturbation`), adding the V-NAS-PT row beside V-NAS (argmax)."""
    return _uses_perturbation(ds(name))


def manual_methods(name):
    return [f"manual-{enc}-{dec}" for enc, dec in (m.split(os.sep) for m in ds(name)["manual"])]


def random_methods(name):
    """One method id per random architecture (the table's "Random (n=N)" row)."""
    return [f"random-{k}" for k in range(ds(name)["random_samples"])]


def all_methods(name):
    """Every method trained and evaluated for a dataset."""
    return table_methods(name) + random_methods(name) + manual_methods(name)


def fixed_arch(method, root):
    """`vnas train --arch` of a manual or random method id (the random codes under
    ROOT/random), for the main pipeline and the experiments alike; None for another id."""
    if method.startswith("manual-"):
        enc, dec = method.removeprefix("manual-").split("-")
        return f"manual:{enc}/{dec}"
    if method.startswith("random-"):
        return f"{root}/random/sample-{method.removeprefix('random-')}.json"
    return None


def method_arch(dataset, method):
    """The --arch argument of `vnas train` for a method id."""
    fixed = fixed_arch(method, f"results/{dataset}")
    if fixed is not None:
        return fixed
    if method == "vnas":
        return f"results/{dataset}/arch.json"
    if method == "vnas-pt":
        return f"results/{dataset}/arch-pt.json"
    if method.startswith("vnas-from-"):
        return f"results/{method.removeprefix('vnas-from-')}/arch.json"
    if method == "unet3d" and ds(dataset).get("unet3d_variant", "cicek") == "cicek":
        return "unet3d-cicek"
    if method in BASELINES:
        return BASELINES[method][0]
    return method  # a published preset such as nih-paper


def method_label(dataset, method):
    """(row name, category) for the tables."""
    if method == "vnas":
        return "V-NAS", "Search"
    if method == "vnas-pt":
        return "V-NAS-PT", "Search (perturbation)"
    if method.startswith("vnas-from-"):
        return f"V-NAS-{method.removeprefix('vnas-from-').upper()}", "Search (transfer)"
    if method.startswith("manual-"):
        enc, dec = method.removeprefix("manual-").split("-")
        return f"{enc.upper()}/{dec.upper()}", "manual"
    if method.startswith("random-"):
        return f"Random sample {method.removeprefix('random-')}", "Random"
    if method in BASELINES:
        return BASELINES[method][1], BASELINES[method][2]
    return f"{PAPER_NAMES[method]} (published)", "Search (published)"


def train_arch_input(wildcards):
    """The file (or, for a random code, the folder of codes) `vnas train --arch` reads."""
    if wildcards.method.startswith("random-"):
        return [f"results/{wildcards.dataset}/random"]
    arch = method_arch(wildcards.dataset, wildcards.method)
    return [arch] if arch.endswith(".json") else []


def reused_model(wildcards):
    """V-NAS's model of the fold, for V-NAS-PT's training: `vnas train --reuse` copies it
    when V-NAS-PT's code is V-NAS's (perturbation scores left every cell at its argmax
    op) and trains otherwise (vnas.engine.reuse); no input for another method."""
    if wildcards.method != "vnas-pt":
        return []
    return [f"results/{wildcards.dataset}/models/vnas/fold{wildcards.fold}/model.pt"]


def threads_of(name):
    return ds(name).get("threads", 1)


# Multi-word arguments are lists: a rule's `{params.x:q}` quotes each word on its own.


def experiment_training_args(block):
    """An experiment's training flags (its params.yaml block): both known-answer
    experiments' searches and retrainings. The SGD flags come from rule_settings.py's
    declaration, as the pipeline's `--settings` records do."""
    return [
        *("--width", block["width"], "--patch", *shape_arg(block["patch"])),
        *("--batch-size", block["batch_size"], "--loss", block["loss"]),
        *_sgd_flags(config, block),
        *("--device", config["device"], "--workers", block["threads"] - 1),
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
from vnas.report.figure_names import FIGURES


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
        "arch_pt": [f"results/{name}/arch-pt.json"] if uses_perturbation(name) else [],
        "searches": expand(
            "results/{dataset}/search/fold{fold}/arch.json", dataset=name, fold=folds(name)
        ),
    }


def report_args(input):
    """`vnas report`'s flags for the inputs of report_inputs (rules report and demo_doc)."""
    return [
        *("--tables", *input.tables, "--figures", *input.figures),
        *("--searches", *(os.path.dirname(p) for p in input.searches)),
        *("--arch", input.arch, *(["--arch-pt", *input.arch_pt] if input.arch_pt else [])),
        *("--search-diagnostics", input.diagnostics),
    ]


def benchmark_files(name):
    """The Snakemake `benchmark:` files (wall and CPU time per job) of every job that a
    dataset's tables and figures need, one folder per rule (`vnas report --benchmarks`)."""
    cfg, root = ds(name), f"results/benchmarks/{name}"
    singles = ["preprocess", "split", "aggregate", "table", "figures", "report"]
    singles += ["synthesize"] if "synth" in cfg else []
    singles += ["aggregate_pt"] if uses_perturbation(name) else []
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
    jobs += expand("{root}/ensemble/{method}.tsv", root=root, method=table_methods(name))
    if test_predictions(name):
        jobs += expand("{root}/predict_test/{method}.tsv", root=root, method=table_methods(name))
    return jobs


def random_args(name):
    """`--random ID...` for `vnas table`: the random architectures' method ids."""
    ids = random_methods(name)
    return ["--random", *ids] if ids else []


def search_schedule(cfg):
    """The architecture schedule of a search set by a params.yaml block (rule_settings)."""
    return _search_schedule(config, cfg)


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
    return fixed_arch(method, root) or method  # mix


def xp_arch_input(wildcards):
    method = wildcards.method
    root = f"results/experiments/{wildcards.experiment}/{wildcards.cue}"
    if method.startswith("random-"):
        return [f"{root}/random"]
    return [xp_arch(wildcards)] if method.startswith("vnas-seed") else []


def xp_warmup(wildcards):
    """Iterations before the first alpha/beta step of an experiment's searches."""
    return search_schedule(xp(wildcards)).warmup


def xp_arch_steps(wildcards):
    """The alpha/beta steps of an experiment's searches."""
    return search_schedule(xp(wildcards)).arch_steps


def xp_arch_lr(wildcards):
    """The alpha/beta learning rate the experiment's searches use (after their rule)."""
    return search_schedule(xp(wildcards)).arch_lr


def xp_training_args(wildcards):
    return experiment_training_args(xp(wildcards))
