# Tables like the paper's Tables 1-5, figures, and a self-contained HTML report.



rule table:
    """Mean ± std, max, min, median per method and class: DSC, NSD and HD95."""
    conda:
        "../envs/vnas.yaml"
    input:
        evals=lambda w: eval_inputs(w.dataset, table_methods(w.dataset) + random_methods(w.dataset)),
        diagnostics=lambda w: (
            ["results/{dataset}/diagnostics.json"] if "vnas" in ds(w)["methods"] else []
        ),
    output:
        csv=report(
            "results/tables/{dataset}.csv",
            category="Tables",
            caption="../report/table.rst",
        ),
        md="results/tables/{dataset}.md",
        metrics="results/tables/{dataset}_metrics.json",
    params:
        methods=lambda w: method_args(w.dataset, table_methods(w.dataset)),
        random=lambda w: random_args(w.dataset),
        diagnostics=lambda w, input: (
            ["--search-diagnostics", *input.diagnostics] if input.diagnostics else []
        ),
        **rule_params("table", config),  # folds, preset
        eval_root=eval_root,
    benchmark:
        "results/benchmarks/{dataset}/table/job.tsv"
    log:
        "results/logs/{dataset}/table.log",
    shell:
        "vnas table --dataset {wildcards.dataset:q} --eval-root {params.eval_root:q} "
        "--n-folds {params.folds:q} --preset {params.preset:q} {params.methods:q} {params.random:q} "
        "{params.diagnostics:q} --out {output.csv:q} "
        "--markdown {output.md:q} --summary-json {output.metrics:q} 2> {log:q}"


rule table_manual:
    """The encoder x decoder grid of manual configurations (paper Tables 4-5)."""
    conda:
        "../envs/vnas.yaml"
    input:
        lambda w: eval_inputs(w.dataset, manual_methods(w.dataset)),
    output:
        csv=report(
            "results/tables/{dataset}_manual.csv",
            category="Tables",
            caption="../report/table_manual.rst",
        ),
        md="results/tables/{dataset}_manual.md",
    params:
        methods=lambda w: method_args(w.dataset, manual_methods(w.dataset)),
        **rule_params("table_manual", config),  # folds
        eval_root=eval_root,
    benchmark:
        "results/benchmarks/{dataset}/table_manual/job.tsv"
    log:
        "results/logs/{dataset}/table_manual.log",
    shell:
        "vnas table --grid --dataset {wildcards.dataset:q} --eval-root {params.eval_root:q} "
        "--n-folds {params.folds:q} {params.methods:q} --out {output.csv:q} "
        "--markdown {output.md:q} 2> {log:q}"


rule figures:
    """Overlays of predictions on CT, alpha/beta heatmaps, search and training curves."""
    conda:
        "../envs/vnas.yaml"
    input:
        evals=lambda w: eval_inputs(w.dataset, table_methods(w.dataset)),
        searches=lambda w: expand(
            "results/{dataset}/search/fold{fold}/arch.json",
            dataset=w.dataset,
            fold=folds(w.dataset),
        ),
        arch="results/{dataset}/arch.json",
        folds="results/{dataset}/folds.json",
        raw=raw_input,
    output:
        heatmap=report(
            "results/figures/{dataset}/arch_probabilities.png",
            category="Figures",
            caption="../report/arch_probabilities.rst",
        ),
        curves=report(
            "results/figures/{dataset}/curves.png",
            category="Figures",
            caption="../report/curves.rst",
        ),
        overlays=report(
            "results/figures/{dataset}/overlays.png",
            category="Figures",
            caption="../report/overlays.rst",
        ),
        trajectories=report(
            "results/figures/{dataset}/search_trajectories.png",
            category="Figures",
            caption="../report/search_trajectories.rst",
        ),
        entropy=report(
            "results/figures/{dataset}/search_entropy.png",
            category="Figures",
            caption="../report/search_entropy.rst",
        ),
    params:
        methods=lambda w: table_methods(w.dataset),
        **rule_params("figures", config),  # preset, cases
        results=lambda w, input: os.path.dirname(input.arch),
        out=lambda w, output: os.path.dirname(output.heatmap),
    benchmark:
        "results/benchmarks/{dataset}/figures/job.tsv"
    log:
        "results/logs/{dataset}/figures.log",
    shell:
        "vnas figures --results {params.results:q} --raw {input.raw:q} "
        "--preset {params.preset:q} --methods {params.methods:q} --cases {params.cases:q} "
        "--out {params.out:q} 2> {log:q}"


rule report:
    """One self-contained HTML page with the tables, search settings, codes and figures."""
    conda:
        "../envs/vnas.yaml"
    input:
        unpack(lambda w: report_inputs(w.dataset)),
    output:
        "results/report/{dataset}.html",
    params:
        report=lambda w, input: report_args(input),
    benchmark:
        "results/benchmarks/{dataset}/report/job.tsv"
    log:
        "results/logs/{dataset}/report.log",
    shell:
        "vnas report --dataset {wildcards.dataset:q} {params.report:q} --out {output:q} "
        "2> {log:q}"


rule demo_doc:
    """docs/demo.md, the README's demo results: the default dataset's report as Markdown,
    its figures copied into docs/images/demo (`make docs` asks for it)."""
    conda:
        "../envs/vnas.yaml"
    input:
        unpack(lambda w: report_inputs(config["dataset"])),
        benchmarks=benchmark_files(config["dataset"]),
    output:
        md="docs/demo.md",
        images=directory("docs/images/demo"),
    params:
        dataset=config["dataset"],
        report=lambda w, input: report_args(input),
    log:
        "results/logs/demo_doc.log",
    shell:
        "vnas report --dataset {params.dataset:q} {params.report:q} "
        "--benchmarks {input.benchmarks:q} --markdown {output.md:q} "
        "--images {output.images:q} 2> {log:q}"
