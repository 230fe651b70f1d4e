"""The run machinery search and retraining share (§4.1): optimiser, loop, run folders.

- :mod:`~vnas.engine.config`: a run's settings as typed configs, the paper's defaults,
  and what ``config.json`` records and fingerprints of them.
- :mod:`~vnas.engine.learner`, :mod:`~vnas.engine.schedule`, :mod:`~vnas.engine.losses`:
  the weight step (SGD, poly decay, cross-entropy).
- :mod:`~vnas.engine.loop`: iterations with progress, curves, checkpoints and resume.
- :mod:`~vnas.engine.retrain`: retraining a fixed architecture from scratch;
  :mod:`~vnas.engine.reuse`: copying a finished retraining that is the same training.
- :mod:`~vnas.engine.context`, :mod:`~vnas.engine.rundir`, :mod:`~vnas.engine.checkpoint`:
  a run's settled inputs, its output folder and its files.
- :mod:`~vnas.engine.device`, :mod:`~vnas.engine.rng`: device, AMP, cudnn and seeding.
- :mod:`~vnas.engine.curves`, :mod:`~vnas.engine.pseudo_dice`,
  :mod:`~vnas.engine.progress_plot`: what a run shows while it runs.
"""
