"""The project's own error types: each one carries a message meant for the user."""


class LlmclsError(Exception):
    """Base class of every error that the CLI shows as one line instead of a traceback."""


class ConfigError(LlmclsError):
    """A config file or override is missing, malformed, or invalid."""


class DataError(LlmclsError):
    """A data file is missing or cannot be read as the config says."""


class EmbeddingsError(LlmclsError):
    """Pretrained vectors are missing or malformed."""


class RunError(LlmclsError):
    """A run directory is missing, incomplete, or incompatible."""


class WriteError(LlmclsError):
    """A file outside a run directory (the token cache, `predict --output`) cannot be written."""


class DeviceError(LlmclsError):
    """The requested device does not exist on this machine."""


class TrainingError(LlmclsError):
    """Training cannot go on (e.g. the loss became NaN); the last checkpoint is kept."""


class RemoteError(LlmclsError):
    """Another training process failed and reports its error itself; this one stops without repeating it."""


class ExportError(LlmclsError):
    """A model cannot be exported, or an exported model is missing, out of date, or cannot be run."""
