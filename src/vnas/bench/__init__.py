"""``vnas bench``: speed and memory of training, search, inference and data loading.

- :mod:`vnas.bench.quick`: the quick look (``vnas bench`` without ``--suite``);
- :mod:`vnas.bench.suite`: the suite behind ``BENCHMARKS.md`` (``vnas bench --suite``),
  built from :mod:`~vnas.bench.timing` (medians, interleaving, peak memory),
  :mod:`~vnas.bench.machine` (matmul limit), :mod:`~vnas.bench.training`,
  :mod:`~vnas.bench.inference`, :mod:`~vnas.bench.data`, :mod:`~vnas.bench.sampling`,
  :mod:`~vnas.bench.demo_scale` (the demo's sizes, one thread) and
  :mod:`~vnas.bench.markdown`.

Only ``vnas bench`` loads this package, and only once it runs (:mod:`vnas.commands.bench`
imports it inside its run function): the other commands, and ``vnas --help``, never do.
So this file imports nothing; import the submodule you need.
"""
