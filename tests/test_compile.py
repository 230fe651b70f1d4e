"""``torch.compile`` (Inductor, the CPU's C++ backend) gives the eager network's outputs:
the compiled path `vnas bench --compile` measures (BENCHMARKS.md) computes the same
function. The fused Conv-BN path has its own check (tests/test_inference.py,
``test_folded_batchnorm_and_channels_last_predict_the_same``)."""

from __future__ import annotations

import pytest
import torch

from vnas.space.network import VNASNet

#: Inductor reorders float32 sums and fuses element-wise ops: the outputs may differ in
#: the last bits, never more than this (logits of order 1).
ATOL, RTOL = 1e-5, 1e-4


@pytest.mark.slow  # a cold compile: about 130 CPU s (270 s wall on the loaded 2-core box)
def test_compiled_network_gives_the_eager_outputs(tmp_path, monkeypatch) -> None:
    from torch._inductor import config as inductor_config

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # cold, and no litter
    torch.manual_seed(0)
    net = VNASNet(in_channels=1, num_classes=3, width=0.0625, cells="mix").eval()
    x = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), inductor_config.patch(compile_threads=1):
        eager = net(x)
        compiled = torch.compile(net)(x)
    assert eager.abs().max() > 0.1  # a real output, not zeros on both sides
    torch.testing.assert_close(compiled, eager, atol=ATOL, rtol=RTOL)
