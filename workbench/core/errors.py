"""Error types whose message is meant for the user.

Every failure a user can cause (a bad file, an unknown codec, a cancelled job) raises a subclass of
`WorkbenchError` with a one-line message that names what is wrong, so the CLI and the GUI can show it
without a traceback. Anything else escaping the core is a bug.
"""


class WorkbenchError(Exception):
    """Base of all user-facing errors; `str(err)` is a complete one-line explanation."""


class ImageError(WorkbenchError):
    """An input image cannot be read or is refused (not an image, too large, unsupported mode)."""


class BitstreamError(WorkbenchError):
    """A compressed file is truncated, corrupted, foreign or otherwise cannot be decoded."""


class CodecUnavailableError(WorkbenchError):
    """The requested codec exists but is missing on this machine (the message says why)."""


class OptionError(WorkbenchError):
    """An option value is unknown, of the wrong type or out of its declared range."""


class OutputError(WorkbenchError):
    """An output cannot be written (would overwrite the input, disk full, no permission)."""


class Cancelled(WorkbenchError):
    """A job was stopped by its consumer before it finished."""


OUT_OF_MEMORY = "not enough memory for this input"


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is a failed allocation: Python's MemoryError, or the RuntimeError that torch's
    allocators raise instead (the CLI and the GUI show both as `OUT_OF_MEMORY`, not as a bug)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc) if isinstance(exc, RuntimeError) else ""
    return "DefaultCPUAllocator" in text or "out of memory" in text
