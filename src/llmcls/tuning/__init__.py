"""`llmcls tune`: hyper-parameter search on the validation split within a time budget (Optuna, imported only when
a search runs). `search.tune` runs it; `space` holds the default search space; `report` writes the tables and
best.yaml."""
