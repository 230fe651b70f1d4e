"""Results as the paper shows them: tables, figures, HTML/Markdown reports, EXPERIMENTS.md.

- :mod:`~vnas.report.tables`: Tables 1–5 from per-case metrics.
- :mod:`~vnas.report.figures`: α/β heatmaps, trajectories, curves, overlays.
- :mod:`~vnas.report.html`: a dataset's self-contained report.
- :mod:`~vnas.report.run_time`: a run's time per rule (Snakemake's benchmark files) and
  each command's start-up cost, for the Markdown report.
- :mod:`~vnas.report.experiment_summary`, :mod:`~vnas.report.experiment_report`: the
  known-answer experiment's record and its section of EXPERIMENTS.md.
"""
