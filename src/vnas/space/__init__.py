"""The search space and the paper's network (§3.1–3.3, Fig. 2).

- :mod:`~vnas.space.axes`: paper kernel notation (x×y×z) to PyTorch's (D, H, W).
- :mod:`~vnas.space.genotype`: architectures as data: the 2D/3D/P3D choice per cell,
  α/β, the paper's codes and arch JSON files.
- :mod:`~vnas.space.operations`: the layers cells are made of.
- :mod:`~vnas.space.cells`: encoder and decoder cells, fixed or mixed (Eq. 2).
- :mod:`~vnas.space.network`: ``VNASNet``, the AH-Net-shaped encoder–decoder.
- :mod:`~vnas.space.models`: every network by name (V-NAS, mix, 3D U-Net, V-Net).
- :mod:`~vnas.space.arch_stats`: parameters, FLOPs and activation memory of a network.
"""
