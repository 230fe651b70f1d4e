"""Export a trained network for other runtimes: ONNX (ONNX Runtime) or TorchScript.

The exported network is :func:`vnas.eval.inference_copy.prepare_for_inference`'s copy (eval mode,
every BatchNorm that follows a convolution folded into it), so it computes what
``vnas predict`` computes, up to float32 rounding. Its input is a batch of windows
``(N, C_in, D, H, W)`` of one fixed window size (the model's test patch): the batch
size is free, the spatial size is not, as MONAI's sliding window only ever feeds
windows of that size. The output is logits ``(N, classes, D, H, W)``.

ONNX goes through ``torch.export`` and the ONNX exporter of ``torch.onnx`` (it needs the
``onnx`` extra: ``pip install 'vnas[onnx]'``). That exporter has no translation of a
non-global ``adaptive_avg_pool3d``, which the pyramid pooling uses, so the graph is
decomposed first with :func:`adaptive_avg_pool3d_decomposition`: with the window size
fixed, each bin is a static slice, and the average is exact.

Every exported file is signed as :mod:`vnas.files.outputs` reads it (ONNX: metadata
``written_by``; TorchScript: an extra file ``vnas.json``) and written to a temporary name,
then renamed into place; ``vnas export`` claims ``--out`` through :mod:`vnas.files.outputs`, so an
existing file is replaced only if ``vnas export`` wrote it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vnas.errors import VNASError
from vnas.eval.inference_copy import prepare_for_inference
from vnas.files.atomic import atomic_path
from vnas.files.outputs import SIGNATURE_KEY, TORCHSCRIPT_EXTRA, signature

__all__ = [
    "FORMATS",
    "OnnxRuntimeNetwork",
    "adaptive_avg_pool3d_decomposition",
    "export_model",
    "onnx_bytes",
    "require_onnx",
]

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
SIGNATURE = signature("export")
#: Exported with this batch (a batch of 1 would be specialised to 1 by torch.export).
EXAMPLE_BATCH = 2
ONNX_HINT = "pip install 'vnas[onnx]' (onnx, onnxscript, onnxruntime)"


def require_onnx(*modules: str) -> None:
    """Raise :class:`VNASError` naming the extra to install if a module is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise VNASError(f"{', '.join(missing)} not installed: {ONNX_HINT}")


def adaptive_avg_pool3d_decomposition(x: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
    """``adaptive_avg_pool3d`` from static slices and means, exact for any sizes.

    Written here because torch has a decomposition for the 2D op only and the ONNX
    exporter none for the 3D one. Adaptive average pooling is separable: bin ``i`` of
    ``out`` along an axis of size ``n`` spans ``[floor(i·n/out), ceil((i+1)·n/out))``
    (PyTorch's definition), and averaging one axis after the other gives the mean over
    the box. An axis that ``out`` divides is a reshape and a mean.
    """
    for axis, out in zip(range(x.ndim - 3, x.ndim), output_size, strict=True):
        size, out = int(x.shape[axis]), int(out)
        if out == size:
            continue
        if size % out == 0:
            x = x.unflatten(axis, (out, size // out)).mean(axis + 1)
            continue
        bins = []
        for i in range(out):
            start, end = (i * size) // out, -(-((i + 1) * size) // out)
            bins.append(x.narrow(axis, start, end - start).mean(axis, keepdim=True))
        x = torch.cat(bins, dim=axis)
    return x


def _inference_copy(model: nn.Module) -> nn.Module:
    # Contiguous: ONNX has no memory format, and TorchScript users feed plain tensors.
    return prepare_for_inference(model, channels_last=False).cpu().float()


def _example(model: nn.Module, patch: Sequence[int]) -> torch.Tensor:
    in_channels = int(getattr(model, "in_channels", 1))
    return torch.zeros(EXAMPLE_BATCH, in_channels, *(int(p) for p in patch))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the ONNX exporter's progress prints, INFO logs and warnings for a block."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._export")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def onnx_bytes(model: nn.Module, patch: Sequence[int], metadata: dict | None = None) -> bytes:
    """The ONNX model (a serialised ``ModelProto``) of ``model`` for windows of ``patch``.

    Args:
        model: the trained network (left unchanged).
        patch: the window size ``(D, H, W)``.
        metadata: string key/values stored in the model (``written_by`` is added).
    """
    require_onnx("onnx", "onnxscript")
    net = _inference_copy(model)
    x = _example(net, patch)
    batch = torch.export.Dim("batch", min=1, max=1024)
    aten = torch.ops.aten
    table = {
        aten.adaptive_avg_pool3d.default: adaptive_avg_pool3d_decomposition,
        aten._adaptive_avg_pool3d.default: adaptive_avg_pool3d_decomposition,
    }
    with _quiet_exporter(), torch.no_grad():
        program = torch.export.export(net, (x,), dynamic_shapes={"x": {0: batch}})
        program = program.run_decompositions(table)
        onnx_program = torch.onnx.export(
            program,
            (x,),
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            optimize=True,
            verbose=False,
        )
    proto = onnx_program.model_proto
    for key, value in {**(metadata or {}), SIGNATURE_KEY: SIGNATURE}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    return proto.SerializeToString()


def _torchscript_bytes(model: nn.Module, patch: Sequence[int], metadata: dict) -> bytes:
    net = _inference_copy(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about the patch check's Python ints
        traced = torch.jit.trace(net, _example(net, patch))
    stream = io.BytesIO()
    extra = {TORCHSCRIPT_EXTRA: json.dumps({**metadata, SIGNATURE_KEY: SIGNATURE})}
    torch.jit.save(traced, stream, _extra_files=extra)
    return stream.getvalue()


def export_model(
    model: nn.Module,
    patch: Sequence[int],
    out: str | Path,
    fmt: str = "onnx",
    metadata: dict | None = None,
) -> dict:
    """Write ``model`` for windows of ``patch`` to ``out`` atomically.

    Args:
        model: the trained network.
        patch: the window size ``(D, H, W)``.
        out: the file to write.
        fmt: ``onnx`` or ``torchscript``.
        metadata: string key/values stored in the file (the model's arch, patch, ...).

    Returns:
        ``{"format", "path", "bytes", "seconds"}``.
    """
    if fmt not in FORMATS:
        raise VNASError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    t0 = time.perf_counter()
    metadata = {k: str(v) for k, v in (metadata or {}).items()}
    if fmt == "onnx":
        data = onnx_bytes(model, patch, metadata)
    else:
        data = _torchscript_bytes(model, patch, metadata)
    with atomic_path(out, suffix=Path(out).suffix or ".tmp") as tmp:
        tmp.write_bytes(data)
    return {
        "format": fmt,
        "path": str(out),
        "bytes": len(data),
        "seconds": time.perf_counter() - t0,
    }


class OnnxRuntimeNetwork:
    """A network run by ONNX Runtime's CPU execution provider, called like a module.

    ``net(windows)`` maps a float32 CPU tensor ``(N, C_in, D, H, W)`` to logits, as the
    torch network does, so MONAI's ``sliding_window_inference`` runs it unchanged.

    Args:
        model: an ``onnx_bytes`` model, or an ``nn.Module`` to export first.
        patch: the window size (needed to export an ``nn.Module``).
        threads: intra-op threads (default: as many as torch uses, for a fair comparison).
    """

    def __init__(
        self,
        model: nn.Module | bytes,
        patch: Sequence[int] | None = None,
        threads: int | None = None,
    ) -> None:
        require_onnx("onnxruntime")
        import onnxruntime as ort

        self.export_s = 0.0
        if isinstance(model, nn.Module):
            if patch is None:
                raise ValueError("patch is needed to export an nn.Module")
            t0 = time.perf_counter()
            model = onnx_bytes(model, patch)
            self.export_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def eval(self) -> OnnxRuntimeNetwork:
        """For symmetry with ``nn.Module`` (an ONNX model is always in eval mode)."""
        return self

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(windows.detach().cpu().float().numpy())
        (logits,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(logits)
