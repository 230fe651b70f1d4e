"""The architecture search (§3.4, Algorithm 1) and what is done with its result (§4.1).

- :mod:`~vnas.search.config`: a search's settings (the α/β step's defaults, the warm-up).
- :mod:`~vnas.search.architect`: the first-order α/β step (Adam).
- :mod:`~vnas.search.schedule`: the warm-up and the α/β learning rate (the paper's or scaled
  to a short search), worked out once.
- :mod:`~vnas.search.task`: one fold's search, weight and architecture steps alternating.
- :mod:`~vnas.search.aggregate`: one architecture per dataset from the folds' searches.
- :mod:`~vnas.search.diagnostics`: how decided a search ended.
- :mod:`~vnas.search.probe`: whether the α/β gradient carries a signal at all.
"""
