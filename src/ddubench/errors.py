"""Project exception types. User mistakes raise these; the CLI turns them into one-line messages."""


class DdubenchError(Exception):
    """A user-facing error: its message says what is wrong, where, and how to fix it."""


class ConfigError(DdubenchError):
    """An invalid configuration file or key."""


class DataError(DdubenchError):
    """Missing, malformed or incompatible data."""


class ModelSpecError(DdubenchError):
    """An unknown model name or invalid model hyperparameters."""


class CheckpointError(DdubenchError):
    """A missing or incompatible checkpoint."""


class OutputError(DdubenchError):
    """An output path that cannot be written."""
