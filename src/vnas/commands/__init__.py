"""One module per ``vnas`` subcommand; each exposes ``register(subparsers)``."""
