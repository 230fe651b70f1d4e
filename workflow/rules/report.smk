# Tables like the paper's Tables 1-5, figures, and a self-contained HTML report.



rule table:
    """Mean ± std, max, min, median per method and class: DSC, NSD and HD95."""
    conda:
        "../envs/vnas.yaml"
    input:
        lambda w: eval_inputs(w.dataset, table_methods(w.dataset)),
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
        folds=lambda w: ds(w)["folds"],
    log:
        "results/logs/{dataset}/table.log",
    shell:
        "vnas table --dataset {wildcards.dataset} --eval-root results/{wildcards.dataset}/eval "
        "--folds {params.folds} {params.methods} --out {output.csv} --markdown {output.md} "
        "--summary-json {output.metrics} 2> {log}"


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
        folds=lambda w: ds(w)["folds"],
    log:
        "results/logs/{dataset}/table_manual.log",
    shell:
        "vnas table --grid --dataset {wildcards.dataset} "
        "--eval-root results/{wildcards.dataset}/eval --folds {params.folds} "
        "{params.methods} --out {output.csv} --markdown {output.md} 2> {log}"


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
        raw=raw_dir,
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
    params:
        methods=lambda w: " ".join(table_methods(w.dataset)),
        preset=lambda w: ds(w)["preset"],
        cases=lambda w: ds(w)["figure_cases"],
    log:
        "results/logs/{dataset}/figures.log",
    shell:
        "vnas figures --results results/{wildcards.dataset} --raw {input.raw} "
        "--preset {params.preset} --methods {params.methods} --cases {params.cases} "
        "--out results/figures/{wildcards.dataset} 2> {log}"


rule report:
    """One self-contained HTML page with the tables, search settings and figures."""
    conda:
        "../envs/vnas.yaml"
    input:
        tables=report_tables,
        figures=rules.figures.output,
        searches=lambda w: expand(
            "results/{dataset}/search/fold{fold}/arch.json",
            dataset=w.dataset,
            fold=folds(w.dataset),
        ),
    output:
        "results/report/{dataset}.html",
    params:
        searches=lambda w, input: " ".join(os.path.dirname(p) for p in input.searches),
    log:
        "results/logs/{dataset}/report.log",
    shell:
        "vnas report --dataset {wildcards.dataset} --tables {input.tables} "
        "--figures {input.figures} --searches {params.searches} --out {output} 2> {log}"
