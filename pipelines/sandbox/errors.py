"""Errors raised by the sandbox runner (a command's own failure is a result, not an error)."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (setup, launch or cleanup), not the command it ran."""


class SandboxUnavailable(SandboxError):
    """No backend that the configuration allows can run here; nothing was executed."""


class ArtifactTooLarge(SandboxError):
    """The run left a text file over the cap on a stored artifact (``CollectCaps.max_content_kb``).

    Text files become the run's artifacts, so one over the cap fails the step, naming it, rather
    than being stored in part or dropped without a word."""

    def __init__(self, path: str, size: int, cap: int):
        super().__init__(f"{path!r} is {size} bytes; a stored artifact may have at most {cap} bytes "
                         f"(CollectCaps.max_content_kb)")
        self.path = path
