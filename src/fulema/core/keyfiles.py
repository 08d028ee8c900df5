"""Development keys kept in the data directory: made once, shared by every process of one
install (adapter, sandbox, workers), never overwritten.

One implementation for every key kind (RSA, SM2, SM4, UnionPay's secure key): the file is
written to a private temporary name with mode 0600 and then hard-linked into place, which fails
if another process got there first, so the first writer wins and every reader sees the same key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The key text stored at `path` (stripped), made with `make()` if there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make().strip() + "\n")
        try:
            with contextlib.suppress(FileExistsError):  # another process's key stands
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()
