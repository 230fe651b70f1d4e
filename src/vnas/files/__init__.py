"""Writing files without losing data: atomic writes, output guards and run locks.

- :mod:`~vnas.files.atomic`: every output appears whole or not at all.
- :mod:`~vnas.files.outputs`: where a command may write (never into its inputs, never over
  what it did not make).
- :mod:`~vnas.files.lock`: one writer per output.
"""
