"""The HTTP API (Litestar) and the `commons` command line: thin shells over the services."""
