"""Atomic file writes: every output is written to a temporary file and renamed."""

from __future__ import annotations

import os
import tempfile
import tomllib
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["atomic_writer", "atomic_write_bytes", "atomic_write_text", "atomic_save_npy",
           "read_toml"]


@contextmanager
def atomic_writer(path: str | Path):
    """A binary file to write ``path`` through: a temporary file in the same folder,
    renamed to ``path`` when the block ends without an exception and removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save_npy(path: str | Path, arr: np.ndarray) -> None:
    with atomic_writer(path) as f:
        np.save(f, arr, allow_pickle=False)


def read_toml(path, error: type[Exception], *, default: tuple[str, str] | None = None
              ) -> tuple[dict, str]:
    """Parse the TOML file ``path`` (or, when it is None, the packaged file
    ``default = (package, resource)``); return ``(table, name)``.  Failures raise
    ``error`` with a message that names the file."""
    if path is None:
        package, resource = default
        return tomllib.loads(resources.files(package).joinpath(resource).read_text()), \
            Path(resource).name
    where = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as e:
        raise error(f"{where}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise error(f"{where}: not valid TOML ({e})") from None
    try:
        return tomllib.loads(text), where
    except tomllib.TOMLDecodeError as e:
        raise error(f"{where}: not valid TOML ({e})") from None
