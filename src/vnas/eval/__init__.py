"""Evaluation (§4.1–4.2): sliding-window inference, prediction, metrics, export.

- :mod:`~vnas.eval.inference`: whole-volume prediction with MONAI's sliding window.
- :mod:`~vnas.eval.predict`: new CT in, label NIfTI out (models, ensembles, mirroring).
- :mod:`~vnas.eval.evaluate`: one fold's test cases scored.
- :mod:`~vnas.eval.metrics`: DSC, NSD and HD95.
- :mod:`~vnas.eval.export`: ONNX and TorchScript for other runtimes.
"""
