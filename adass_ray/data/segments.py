"""A delimited text file parsed as a stream in bounded memory, on all cores, ahead of its reader.

``pyarrow.csv.open_csv`` (a streaming reader) decodes its blocks one after another on one
core; ``pyarrow.csv.read_csv`` decodes blocks on all cores but holds the whole file. This module
gets both: the file is cut into *segments* of ``SEGMENT_BLOCKS`` blocks at line ends, and
``PARSERS`` threads parse the next segments (each a single-threaded ``read_csv``: per segment,
pyarrow's own threading costs about a tenth more CPU) while the caller works on the current one.
Memory: the current segment and ``PARSERS`` more.

Cutting at line ends is what ``read_csv`` itself does between blocks when values may not hold
newlines (``ParseOptions.newlines_in_values`` false, as in every reader here), so the rows and
values are those of one ``read_csv`` over the whole file. The header (if the file has one) is
parsed alone, once, and its names given to every segment; column types the caller did not
declare are inferred on the first segment and then fixed, as the streaming reader fixes them
on its first block.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

SEGMENT_BLOCKS = 16  # blocks per segment
PARSERS = 2  # segments parsed at once, ahead of the caller


def iter_segments(
    path: Path, read: pacsv.ReadOptions, parse: pacsv.ParseOptions,
    convert: pacsv.ConvertOptions,
) -> Iterator[pa.RecordBatch]:
    """Record batches (one per parsed block) of ``path``, in file order.

    ``read`` gives the block size and either the column names or, if it has none, says the
    file's first line is the header. Raises what ``read_csv`` raises (``ArrowInvalid`` ...).
    """
    if parse.newlines_in_values:
        raise ValueError("segments are cut at line ends: values must not hold newlines")
    size = max(read.block_size, 1) * SEGMENT_BLOCKS
    with path.open("rb") as fh, ThreadPoolExecutor(max_workers=PARSERS) as parsers:
        names = list(read.column_names)
        if not names:
            names = _header(fh.readline(), parse)
        options = pacsv.ReadOptions(column_names=names, block_size=read.block_size,
                                    encoding=read.encoding, use_threads=False)
        tail = [b""]  # the part of the last read after its last line end

        def submit(conv: pacsv.ConvertOptions) -> Future[pa.Table] | None:
            data = _next_segment(fh, size, tail)  # the file is read in order, here
            if data is None:
                return None
            return parsers.submit(pacsv.read_csv, data, read_options=options,
                                  parse_options=parse, convert_options=conv)

        first = submit(convert)
        pending: deque[Future[pa.Table]] = deque([] if first is None else [first])
        fixed = None
        while pending:
            table = pending.popleft().result()
            if fixed is None and table.num_rows:  # later segments get the first one's types
                fixed = copy.deepcopy(convert)
                fixed.column_types = {f.name: f.type for f in table.schema}
            conv = convert if fixed is None else fixed
            while len(pending) < PARSERS and (nxt := submit(conv)) is not None:
                pending.append(nxt)
            yield from table.to_batches()


def _header(line: bytes, parse: pacsv.ParseOptions) -> list[str]:
    """Column names of a header line, as ``read_csv`` parses them (quotes, BOM ...)."""
    return pacsv.read_csv(pa.py_buffer(line), parse_options=parse).column_names


def _next_segment(fh: BinaryIO, size: int, tail: list[bytes]) -> pa.BufferReader | None:
    """The next ``size`` bytes or more, up to and including a line end (the rest is kept in
    ``tail`` for the next segment); ``None`` at the end of the file."""
    data = tail[0]
    while True:
        chunk = fh.read(size)
        if not chunk:  # the end: what is left is the last (maybe unterminated) line
            tail[0] = b""
            return pa.BufferReader(pa.py_buffer(data)) if data else None
        data = data + chunk if data else chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            tail[0] = data[cut:]
            return pa.BufferReader(pa.py_buffer(memoryview(data)[:cut]))
