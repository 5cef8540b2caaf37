"""A user's Python file that travels by value: studies and claims files run where they are sent.

A worker (a process of a pool, or a Dask worker on another machine) cannot be expected to see
the submitting machine's files: there is no shared file system on a real cluster, and a worker
installed with only ``pip install gradsim[dask]`` has no checkout. So a study or claims file is
read once, where it is submitted, and its text goes with every task; each process executes the
text once (cached by its sha256) and takes the study or claims from the module it defines.

A file that travels must be self-contained: it may import installed packages (gradsim, numpy,
...), not modules that sit beside it on disk.
"""

from __future__ import annotations

import hashlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from ._validate import UsageError

__all__ = ["SourceFile"]

_MODULES: dict[tuple[str, str], types.ModuleType] = {}


@dataclass(frozen=True)
class SourceFile:
    """The text of a Python file and the path it was read from.

    Attributes
    ----------
    path : str
        Absolute path at reading time; names the file in messages and tracebacks only, and is
        never opened again.
    text : str
        The file's contents.
    """

    path: str
    text: str

    @classmethod
    def read(cls, path, what: str = "file", prefix: str = "") -> "SourceFile":
        """Read ``path``: a UsageError (``prefix`` + a message naming ``what``) if it is
        missing, not a ``.py`` file or not readable UTF-8 text."""
        path = Path(path)
        if not path.exists():
            raise UsageError(f"{prefix}no {what} at {path}")
        if not path.is_file() or path.suffix != ".py":
            raise UsageError(f"{prefix}a {what} must be a Python file (*.py); got {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{prefix}cannot read the {what} {path}: {exc}") from None
        return cls(str(path.resolve()), text)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def stem(self) -> str:
        return Path(self.path).stem

    def module(self) -> types.ModuleType:
        """The module the text defines, executed once per process (then cached).

        Registered in ``sys.modules`` (dataclasses and pickling by reference look modules up
        there) under a name made from the file's stem and its hash, so that two versions of one
        file never share a module.
        """
        key = (self.path, self.sha256)
        if key not in _MODULES:
            name = f"gradsim_file_{_identifier(self.stem)}_{self.sha256[:12]}"
            module = types.ModuleType(name)
            module.__file__ = self.path
            sys.modules[name] = module
            try:
                # Compiled under its path, so that tracebacks and error messages name the file.
                exec(compile(self.text, self.path, "exec"), module.__dict__)
            except BaseException:
                del sys.modules[name]
                raise
            _MODULES[key] = module
        return _MODULES[key]


def _identifier(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)
