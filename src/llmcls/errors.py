"""The project's own error types: each one carries a message meant for the user, and `echo`, the one way a
message quotes what the user gave."""

import reprlib

# The most characters of user input a message quotes: enough to recognise a value, and a hostile input (a
# megabyte string, an expanded alias bomb) cannot make a message of megabytes.
ECHO_CHARS = 200

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, ECHO_CHARS, ECHO_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` cut to about `limit` characters, without building the whole repr of a large value."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` as it is, if short and printable; else cut to `limit` characters and escaped onto one line."""
    short = text[:limit]
    if not short.isprintable():
        short = short.encode("unicode_escape").decode("ascii")[:limit]
    return short if len(text) <= limit else f"{short}... ({len(text) - limit} more characters)"


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
