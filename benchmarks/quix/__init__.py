"""The Quix Streams peer baseline (runs in .venv-quix)."""
