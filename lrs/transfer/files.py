"""Export files: NDJSON records (``lrs.usecases.transfer``), optionally gzip, written and read
resumably in constant memory.

Writing, a state file beside the export (``FILE.export-state``) records at each checkpoint how
many bytes of the file hold whole records and the store position after them; the data are
flushed to disk before the state names them. An interrupted export resumed with the same
options cuts the file back to that length and goes on from that position, so every record is
in the file once. A gzip export is a series of gzip members, one per checkpoint (``gzip``,
``zcat`` and Python read them as one stream). The state file is removed when the export is
complete.

Reading, ``FileSource`` remembers in its state file (``FILE.import-state``, or ``--state``) the
offset after the last record of the last stored batch; a resumed import skips to it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from lrs.usecases.transfer import ExportPosition

GZIP_MAGIC = b"\x1f\x8b"


class TransferError(Exception):
    """An export or import cannot go on as asked (the message says why and what to do)."""


def _save_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(state))
    os.replace(temporary, path)


def _load_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        raise TransferError(
            f"{path} is not a state file this command wrote; remove it to start over"
        ) from None
    if not isinstance(state, dict):
        raise TransferError(f"{path} is not a state file this command wrote; remove it to start over")
    return state


class ExportWriter:
    """Records into ``path``; resumable through ``path.export-state``."""

    def __init__(self, path: Path, *, compress: bool, identity: dict[str, Any], every: float = 1.0) -> None:
        self.path, self.compress = path, compress
        self.state_path = path.with_name(path.name + ".export-state")
        self.identity = {**identity, "gzip": compress}
        self.every = every
        self.count = 0
        self._raw: BinaryIO | None = None
        self._out: BinaryIO | None = None
        self._last = 0.0

    def start(self, header: bytes, *, overwrite: bool) -> ExportPosition:
        """Open the export: resumed where its state file says, or new (with ``header``)."""
        state = _load_state(self.state_path)
        if state is not None:
            if state.get("identity") != self.identity:
                raise TransferError(
                    f"{self.path} is an interrupted export with other options ({self.state_path} says"
                    f" {state.get('identity')}); run it again with those, or remove both files to start over"
                )
            if not self.path.exists() or self.path.stat().st_size < state["bytes"]:
                raise TransferError(
                    f"{self.path} is shorter than {self.state_path} says; remove both to start over"
                )
            self._raw = open(self.path, "r+b")  # noqa: SIM115 - closed by finish()/close()
            self._raw.truncate(state["bytes"])
            self._raw.seek(state["bytes"])
            self.count = int(state["count"])
            self._open_member()
            return ExportPosition.from_json(state["position"])
        if self.path.exists() and not overwrite:
            raise TransferError(f"{self.path} exists; give --overwrite to replace it")
        self._raw = open(self.path, "wb")  # noqa: SIM115
        self._open_member()
        self.write([header])
        position = ExportPosition()
        self.checkpoint(position)
        return position

    def _open_member(self) -> None:
        self._out = (
            gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
            if self.compress
            else self._raw
        )

    def write(self, lines: list[bytes]) -> None:
        if lines:
            self._out.write(b"\n".join(lines) + b"\n")

    def checkpoint(self, position: ExportPosition, *, force: bool = True) -> None:
        """Make what was written durable and record ``position`` as where it ends (at most once
        per ``every`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        if self.compress:
            self._out.close()  # ends the gzip member; the file stays open
        self._raw.flush()
        os.fsync(self._raw.fileno())
        _save_state(self.state_path, {"identity": self.identity, "bytes": self._raw.tell(),
                                      "count": self.count, "position": position.to_json()})  # fmt: skip
        if self.compress:
            self._open_member()

    def finish(self) -> None:
        """The export is complete: close it and forget the state."""
        if self.compress:
            self._out.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self.state_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop without finishing (the state file stays for a resume)."""
        if self._raw is not None and not self._raw.closed:
            self._raw.close()


class FileSource:
    """The records of an export file (plain or gzip); also a file of bare statements, one JSON
    statement per line. Resumable through its state file."""

    def __init__(self, path: Path, state_path: Path | None = None) -> None:
        self.path = path
        self.state_path = state_path or path.with_name(path.name + ".import-state")
        self.size = path.stat().st_size
        self._raw: BinaryIO | None = None
        self._key = ""

    def consumed(self) -> int:
        """Bytes of the file read so far (compressed bytes of a gzip file)."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else 0

    def _identity(self, first_line: bytes) -> str:
        return hashlib.sha256(str(self.path.resolve()).encode() + b"\n" + first_line).hexdigest()

    async def records(self) -> AsyncIterator[tuple[dict[str, Any], Any]]:
        with open(self.path, "rb") as raw:
            self._raw = raw
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            reader: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            first = reader.readline()
            self._key = self._identity(first)
            offset, number = len(first), 1
            state = _load_state(self.state_path)
            if state is not None and state.get("source") == self._key:
                offset, number = int(state["offset"]), int(state["line"])
                _skip(reader, raw, compressed, offset - len(first))
            else:
                yield self._record(first, 1), (offset, number)
            while True:
                line = reader.readline()
                if not line:
                    break
                offset += len(line)
                number += 1
                if line.strip():
                    yield self._record(line, number), (offset, number)
        self._raw = None

    def _record(self, line: bytes, number: int) -> dict[str, Any]:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TransferError(f"{self.path}, line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise TransferError(f"{self.path}, line {number}: not a JSON object")
        if "statement" not in record and "document" not in record and "actor" in record:
            return {"statement": record}  # a bare statement per line
        return record

    async def commit(self, position: tuple[int, int]) -> None:
        offset, number = position
        _save_state(self.state_path, {"source": self._key, "offset": offset, "line": number})

    def done(self) -> None:
        self.state_path.unlink(missing_ok=True)


def _skip(reader: BinaryIO, raw: BinaryIO, compressed: bool, count: int) -> None:
    """Move past ``count`` bytes of the (uncompressed) stream after its first line."""
    if not compressed:
        raw.seek(count, os.SEEK_CUR)
        return
    while count > 0:
        chunk = reader.read(min(count, 1 << 20))
        if not chunk:
            raise TransferError(
                "the file is shorter than its import state says; remove the state to start over"
            )
        count -= len(chunk)
