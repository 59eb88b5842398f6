"""Errors raised by the sandbox runner (a command's own failure is a result, not an error)."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (setup, launch or cleanup), not the command it ran."""


class SandboxUnavailable(SandboxError):
    """No backend that the configuration allows can run here; nothing was executed."""
