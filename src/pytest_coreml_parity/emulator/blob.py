"""Read Core ML's MIL weight files (``weights/weight.bin``) with numpy.

The format (coremltools' ``mlmodel/src/MILBlob/Blob/StorageFormat.hpp``, BSD-3): a
64-byte ``storage_header`` (``uint32 count``, ``uint32 version`` = 2, reserved), then
per blob a 64-byte ``blob_metadata`` (``uint32 sentinel`` = 0xDEADBEEF, ``uint32
mil_dtype``, ``uint64 sizeInBytes``, ``uint64 offset`` of the data,
``uint64 padding_size_in_bits``, reserved) and its data, each 64-byte aligned. A
program's ``BlobFileValue`` names the file and the offset of the blob's metadata.

Sub-byte types (``int4``, ``uint1``/``2``/``3``/``4``/``6``) are packed
least-significant bit first; the metadata's ``padding_size_in_bits`` says how many
bits of the last byte are unused. We return them one element per byte, as
coremltools' reader does (``int4`` sign-extended to int8).

coremltools' reader (C++) checks nothing beyond the sentinel and the version, so
:func:`check_blob_file` checks every record against the file's size first.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError

SENTINEL = 0xDEADBEEF
ALIGNMENT = 64
_HEADER = struct.Struct("<II")
_METADATA = struct.Struct("<IIQQQ")  # sentinel, mil_dtype, size_in_bytes, offset, padding bits

#: MIL type name -> (bits per element, signed) for the packed sub-byte types.
SUB_BYTE: dict[str, tuple[int, bool]] = {
    "int4": (4, True),
    "uint1": (1, False),
    "uint2": (2, False),
    "uint3": (3, False),
    "uint4": (4, False),
    "uint6": (6, False),
}
#: MIL type name -> the numpy dtype a blob of that type is read as.
BYTE_TYPES: dict[str, np.dtype[Any]] = {
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
}


def unpack_bits(packed: np.ndarray, nbits: int, count: int, signed: bool) -> np.ndarray:
    """``count`` elements of ``nbits`` each from ``packed`` bytes, least-significant bit
    first (one per byte: int8 when ``signed``, sign-extended, else uint8)."""
    bits = np.unpackbits(np.ascontiguousarray(packed, dtype=np.uint8), bitorder="little")
    bits = bits[: count * nbits].reshape(count, nbits).astype(np.uint16)
    values = (bits << np.arange(nbits, dtype=np.uint16)).sum(axis=1, dtype=np.uint16)
    if signed:
        values = values.astype(np.int16)
        signed_values: np.ndarray = np.where(values >= 1 << (nbits - 1), values - (1 << nbits), values)
        return signed_values.astype(np.int8)
    unsigned: np.ndarray = values.astype(np.uint8)
    return unsigned


class BlobFile:
    """One weight file, read once; :meth:`read` returns the blob at a metadata offset."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        try:
            self.data = memoryview(path.read_bytes())
        except OSError as exc:
            raise ModelLoadError(f"{source}: cannot read weight file {path.name}: {exc}") from exc
        check_blob_bytes(self.data, path.name, source)
        _count, version = _HEADER.unpack_from(self.data, 0)
        if version != 2:
            raise ModelLoadError(
                f"{source}: weight file {path.name} has storage version {version}; "
                "Core ML's MIL blob format is version 2"
            )

    def read(self, offset: int, mil_type: str) -> np.ndarray:
        """The elements of the blob whose metadata is at ``offset``, as ``mil_type``."""
        where = f"{self.source}: weight file {self.path.name}, blob at byte {offset}"
        if offset < ALIGNMENT or offset + _METADATA.size > len(self.data):
            raise ModelLoadError(f"{where}: no such blob (the file has {len(self.data)} bytes)")
        sentinel, _code, nbytes, start, padding = _METADATA.unpack_from(self.data, offset)
        if sentinel != SENTINEL:
            raise ModelLoadError(f"{where}: invalid sentinel in the blob's metadata")
        raw = np.frombuffer(self.data, dtype=np.uint8, count=nbytes, offset=start)
        if mil_type in SUB_BYTE:
            nbits, signed = SUB_BYTE[mil_type]
            return unpack_bits(raw, nbits, (nbytes * 8 - padding) // nbits, signed)
        dtype = BYTE_TYPES.get(mil_type)
        if dtype is None:
            raise ModelLoadError(f"{where}: a blob cannot hold {mil_type} values")
        return raw.view(dtype)


class BlobFiles:
    """The weight files of one program, opened on first use (a file per name)."""

    def __init__(self, weights_dir: Path | None, source: str) -> None:
        self.weights_dir = weights_dir
        self.source = source
        self._files: dict[str, BlobFile] = {}
        self._lock = threading.Lock()

    def read(self, file_name: str, offset: int, mil_type: str) -> np.ndarray:
        # "@model_path/weights/weight.bin": coremltools joins the last part to weights_dir.
        name = file_name.split("/")[-1]
        with self._lock:
            blob = self._files.get(name)
            if blob is None:
                if self.weights_dir is None:
                    raise ModelLoadError(
                        f"{self.source}: the program reads weight file {file_name!r} "
                        "but the model has no weights folder"
                    )
                blob = self._files[name] = BlobFile(self.weights_dir / name, self.source)
        return blob.read(offset, mil_type)


def check_weight_files(weights_dir: Path, source: str) -> None:
    """Check every ``*.bin`` under ``weights_dir`` (see :func:`check_blob_bytes`)."""
    if not weights_dir.is_dir():
        return
    for blob in weights_dir.glob("*.bin"):
        check_blob_bytes(memoryview(blob.read_bytes()), blob.name, source)


def check_blob_bytes(data: memoryview, name: str, source: str) -> None:
    """Raise :class:`ModelLoadError` when a weight file is truncated or corrupt: every
    record needs the sentinel, and its data must lie inside the file."""
    size = len(data)
    if size < ALIGNMENT:
        raise ModelLoadError(f"{source}: weight file {name} is truncated ({size} bytes)")
    offset = ALIGNMENT
    while offset < size:
        if offset + _METADATA.size > size:
            raise ModelLoadError(f"{source}: weight file {name} is truncated at byte {offset}")
        sentinel, _dtype, nbytes, data_offset, _padding = _METADATA.unpack_from(data, offset)
        if sentinel != SENTINEL:
            raise ModelLoadError(
                f"{source}: weight file {name} is corrupt (bad blob header at byte {offset})"
            )
        end = data_offset + nbytes
        if end > size:
            raise ModelLoadError(
                f"{source}: weight file {name} is truncated: a blob needs bytes "
                f"{data_offset}..{end} but the file has {size}"
            )
        offset = (end + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
