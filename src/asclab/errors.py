"""One exception family for user errors; the CLI prints its message in one line."""


class AsclabError(Exception):
    """A user error: bad input, bad configuration, a file that cannot be used."""


class DataError(AsclabError):
    """Unreadable, empty or malformed audio or metadata (message names the file and row)."""


class ConfigError(AsclabError):
    """An invalid recipe, override or option."""


class CheckpointError(AsclabError):
    """A file that is not a usable asclab checkpoint."""


class ComplexityError(AsclabError):
    """A model that breaks a challenge's complexity limits."""


class TrainingDiverged(AsclabError):
    """The training loss became NaN or infinite: the run stops at that step (its last checkpoint is kept)."""
