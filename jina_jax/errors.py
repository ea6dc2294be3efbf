"""The errors jina_jax raises on purpose, and how the command-line entry points report them.

Each names what is wrong: a config key and its allowed values, a file and line, a checkpoint and
its step, a tensor, a workdir and who holds it. ``cli_errors`` turns any of them into one message
on stderr as the last thing a command prints, and exit status 2; any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


class JinaJaxError(Exception):
    """A known error: bad input or state that the message explains; not a bug."""


class ConfigError(JinaJaxError, ValueError):
    """A config value is missing, of the wrong type or out of range: names the key."""


class DataError(JinaJaxError, ValueError):
    """Malformed or unreadable data: names the file (and line, or shard)."""


class CheckpointError(JinaJaxError, ValueError):
    """A checkpoint or model file cannot be used: names the file or step and why."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit what is asked of it (another config, tensors of other shapes):
    names the differing keys or tensors."""


class WorkdirError(JinaJaxError, RuntimeError):
    """The workdir cannot be used: not a jina_jax workdir, or held by another run."""


class TrainingError(JinaJaxError, RuntimeError):
    """Training stopped on purpose (a non-finite loss, a failed save): names the step and what
    was kept."""


# Exceptions the CLIs also report as one line: the message already names the path.
EXPECTED = (JinaJaxError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def report(program: str, error: BaseException) -> int:
    """One line on stderr for a known error; the exit status a command returns for it."""
    sys.stdout.flush()
    print(f"{program}: error: {error}", file=sys.stderr, flush=True)
    return 2


@contextlib.contextmanager
def cli_errors(program: str) -> Iterator[None]:
    """Runs a command's body; a known error ends the process with ``program: error: <message>``
    as its last output and exit status 2. The process exits at once (``os._exit``) so that
    background threads (orbax's async writers, tokenizers) print nothing after the message."""
    try:
        yield
    except EXPECTED as error:
        os._exit(report(program, error))
