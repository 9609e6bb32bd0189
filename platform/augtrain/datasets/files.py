"""Input files from a folder nobody vouches for: listed without following what should not be followed,
opened only when they are regular files.

Every entry that is not read becomes a (id, reason) pair for the quarantine, never a silent skip:
broken links, links that lead out of the folder (unless the user allows it), link loops, FIFOs,
sockets and devices (never opened: opening a FIFO blocks), names that are not valid UTF-8.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs

from augtrain.datasets.storage import filesystem, is_uri


@dataclass
class Listing:
    """The regular files below a folder, sorted, each with its display id, and the entries refused."""

    files: list[tuple[str, Path]] = field(default_factory=list)  # (id relative to the root, path)
    stamps: dict[str, str] = field(default_factory=dict)  # id -> size:mtime (a file rewritten is new data)
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)


def display(path: Path | str) -> str:
    """A path as text that always encodes: bytes that are not UTF-8 shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def walk(root: Path, follow_links: bool = False) -> Listing:
    """Every entry below `root`: regular files to read, the rest refused with a reason.

    A symlink is followed only when its target lies inside `root`, or anywhere with `follow_links`;
    a folder reached twice (a link loop) is refused.
    """
    root = root.resolve()
    out = Listing()
    seen = {(root.stat().st_dev, root.stat().st_ino)}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                names = sorted(entries, key=lambda entry: os.fsencode(entry.name))
        except OSError as exc:  # unreadable, or a path past the system's length limit
            out.rejects.append((display(folder.relative_to(root)), f"unreadable folder: {exc.strerror}"))
            continue
        for entry in names:
            path = Path(entry.path)
            id_ = display(path.relative_to(root))
            reason = _refusal(entry, path, root, follow_links)
            if reason:
                out.rejects.append((id_, reason))
                continue
            try:
                info = path.stat()
            except OSError as exc:
                out.rejects.append((id_, f"unreadable: {exc.strerror}"))
                continue
            if stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in seen:
                    out.rejects.append((id_, "symlink loop: a folder reached twice"))
                else:
                    seen.add((info.st_dev, info.st_ino))
                    stack.append(path)
            elif stat.S_ISREG(info.st_mode):
                out.files.append((id_, path))
                out.stamps[id_] = f"{info.st_size}:{info.st_mtime_ns}"
            else:
                out.rejects.append((id_, f"not a regular file: {_kind(info.st_mode)}"))
    out.files.sort(key=lambda item: item[0])
    return out


def _refusal(entry: os.DirEntry, path: Path, root: Path, follow_links: bool) -> str | None:
    """Why an entry is not listed (bad name, broken or escaping link), or None."""
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if not entry.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return f"broken symlink: {display(os.readlink(path))}"
    if not follow_links and not target.is_relative_to(root):
        return f"symlink outside the source folder: {display(target)} (data.follow_links: true allows it)"
    return None


def inside(root: Path, name: str, follow_links: bool = False) -> tuple[Path | None, str | None]:
    """The file a table row names relative to `root`, or (None, why it is refused)."""
    candidate = root / name
    if Path(name).is_absolute():
        return None, f"outside the source folder: absolute path {display(name)}"
    try:
        target = candidate.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None, "file not found"
    if not follow_links and not target.is_relative_to(root.resolve()):
        return None, f"outside the source folder: {display(name)} (data.follow_links: true allows it)"
    mode = target.stat().st_mode
    if not stat.S_ISREG(mode):
        return None, f"not a regular file: {'folder' if stat.S_ISDIR(mode) else _kind(mode)}"
    return candidate, None


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file (checked on the open file: a FIFO swapped in
    after listing is refused without blocking), else OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{display(path)}: not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file (or a file at a URI) of at most `limit` bytes, else OSError."""
    with open_source(path) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{display(path)}: larger than {limit} bytes")
    return data


def local_source(source: str) -> Path | None:
    """The local path of a source (a path, or a file:// URI: read as hardened local files), or None for
    a URI of remote storage."""
    if not is_uri(source):
        return Path(source)
    return Path(unquote(urlparse(source).path)) if source.startswith("file://") else None


def is_folder(source: str) -> bool:
    path = local_source(source)
    if path is not None:
        return path.is_dir()
    fs, inner = filesystem(source)
    return fs.get_file_info(inner).type == pafs.FileType.Directory


def first_suffix(source: str) -> str | None:
    """The suffix (lower case) of the first visible file in a local folder, walked in sorted order: what
    a modality looks at to claim a folder (recordings, texts) before any file is read; None if none."""
    path = Path(source)
    if not path.is_dir():
        return None
    for _, folders, files in os.walk(path):
        folders.sort()
        visible = sorted(f for f in files if not f.startswith("."))
        if visible:
            return Path(visible[0]).suffix.lower()
    return None


def walk_uri(uri: str) -> Listing:
    """The files below a folder of remote storage (which has no links or special files), sorted; each
    listed as (id relative to the folder, its URI)."""
    fs, root = filesystem(uri)
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    out = Listing()
    for info in found:
        if info.type == pafs.FileType.File:
            id_ = info.path[len(root.rstrip("/")) + 1 :]
            out.files.append((id_, f"{uri.rstrip('/')}/{id_}"))
            out.stamps[id_] = f"{info.size}:{info.mtime_ns}"
    out.files.sort(key=lambda item: item[0])
    return out


def open_source(location: str | Path) -> BinaryIO:
    """A source file opened for reading (random access, buffered: readline works): a regular local file
    (see `open_regular`), or a file of remote storage (pyarrow's files have no readline of their own)."""
    local = local_source(str(location))
    if local is not None:
        return open_regular(local)
    fs, path = filesystem(str(location))
    return io.BufferedReader(fs.open_input_file(path))


class Refused(Exception):
    """A record a reader will not decode; its text is the quarantine reason."""


def open_record(stack, location: str | Path) -> BinaryIO:
    """A record's file opened on `stack` (a contextlib.ExitStack) for a reader that quarantines: Refused
    if it is empty."""
    file = stack.enter_context(open_source(location))
    if file.seek(0, 2) == 0:
        raise Refused("empty file (0 bytes)")
    file.seek(0)
    return file


def stamp(location: str) -> str:
    """A file's size and modification time: a file rewritten is a new fingerprint."""
    local = local_source(location)
    if local is not None:
        info = local.stat()
        return f"{info.st_size}:{info.st_mtime_ns}"
    fs, path = filesystem(location)
    info = fs.get_file_info(path)
    return f"{info.size}:{info.mtime_ns}"
