"""Telling a URI from a folder, and a plain file name from a path, without opening anything (no pyarrow:
the job spec checks its locations with these)."""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
URI_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "file")  # pyarrow.fs.FileSystem.from_uri


def is_uri(location: str) -> bool:
    return bool(_SCHEME.match(location))


def check_name(name: str, what: str = "name") -> str:
    """`name` if it is one plain path component; a name from outside (a run, dataset or trial name) must
    never place a file outside its parent folder."""
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0") or len(name.encode(errors="replace")) > 255:
        raise ValueError(f"{what} {name[:80]!r} is not a plain file name (no '/', '\\', NUL, '.' or '..')")
    return name
