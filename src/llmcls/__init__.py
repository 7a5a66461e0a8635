"""llmcls: train, evaluate and use GloVe-initialised (bi)LSTM text classifiers.

Importing the package is cheap: torch and spaCy are imported by the modules that need them.
"""

__version__ = "0.1.0"
