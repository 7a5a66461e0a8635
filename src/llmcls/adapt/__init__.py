"""Defaults that adapt to the data: a profile of a training file (`profile`), the settings it suggests
(`choices`), and the commented config that `llmcls init` writes (`render`)."""
