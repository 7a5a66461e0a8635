"""The `llmcls` command (`app`) and how it draws progress and results (`render`)."""

from llmcls.cli.app import app, main

__all__ = ["app", "main"]
