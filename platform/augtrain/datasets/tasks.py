"""Work on a source's records in Ray Data tasks on every node, the driver holding only small results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from augtrain.datasets.sources import Listing, Reader, SourceError


def map_chunks(function: Callable[..., list], items: list, size: int, **kwargs) -> list:
    """`function(chunk, **kwargs)` (a list of JSON values per chunk) over `items` in chunks of `size`, one
    Ray Data task per chunk (one CPU each); the results concatenated in the order of `items`. A
    SourceError raised in a task is raised here, as one error naming the file. Without a Ray up (`predict`
    in its own process), the chunks run here."""
    import ray

    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    if not chunks:
        return []
    if not ray.is_initialized():
        return [result for chunk in chunks for result in json.loads(json.dumps(function(chunk, **kwargs)))]
    context = ray.data.DataContext.get_current()
    reserving = context.op_resource_reservation_enabled
    # One operator: Ray Data's reservation of a share of the CPUs for each operator would leave one of
    # two CPUs idle half the time (measured: 10 one-second tasks on 2 CPUs took 6.6 s with it, 5.1 without).
    context.op_resource_reservation_enabled = False
    try:
        # each task gets its own chunk as a row (passed to every task, the whole list would be
        # unpickled by each of them: quadratic in the data)
        ds = ray.data.from_items([{"id": n, "chunk": chunk} for n, chunk in enumerate(chunks)],
                                 override_num_blocks=len(chunks))
        ds = ds.map_batches(_apply, fn_kwargs={"function": function, "kwargs": kwargs}, batch_size=1,
                            batch_format="numpy", num_cpus=1)
        done = sorted((row["id"], row["result"]) for row in ds.iter_rows())
    except Exception as exc:
        cause = exc
        while cause is not None and not isinstance(cause, SourceError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise SourceError(str(cause).splitlines()[-1]) from None
    finally:
        context.op_resource_reservation_enabled = reserving
    return [result for _, results in done for result in json.loads(results)]


def _apply(batch: dict, function: Callable[..., list], kwargs: dict) -> dict:
    return {"id": batch["id"], "result": [json.dumps(function(list(batch["chunk"][0]), **kwargs))]}


@dataclass(frozen=True)
class Records:
    """Records of a listing to decode in one task (travels pickled, as one value)."""

    keys: list
    ids: list[str]
    labels: list[str]


def _chunks(listing: Listing, size: int) -> list[Records]:
    return [Records(listing.keys[start : start + size], listing.ids[start : start + size],
                    listing.labels[start : start + size]) for start in range(0, len(listing.ids), size)]


def _refused(listing: Listing) -> list[dict]:
    """The entries a listing refused, as decoded rows carry them."""
    return [{"id": id_, "label": "", "x": b"", "reason": reason} for id_, reason in listing.rejects]


def decoded_rows(listing: Listing, size: int = 256):
    """A Ray Data dataset of rows (id, label, x bytes, reason) of every record of `listing` and every
    entry it refused, decoded in tasks as the driver reads on (prediction inputs)."""
    import ray

    chunks = _chunks(listing, size)
    ds = ray.data.from_items([{"records": chunk} for chunk in chunks], override_num_blocks=max(1, len(chunks)))
    ds = ds.map_batches(_decode, fn_kwargs={"reader": listing.reader}, batch_size=1, batch_format="numpy",
                        num_cpus=0.5)
    return ds.union(ray.data.from_items(_refused(listing))) if listing.rejects else ds


def decoded_batches(listing: Listing, size: int = 256) -> Iterator[dict]:
    """The rows of `decoded_rows`, decoded in this process: batches of `size` records, then the refused."""
    for chunk in _chunks(listing, size):
        yield _decode({"records": [chunk]}, listing.reader)
    if listing.rejects:
        yield {name: np.asarray([row[name] for row in _refused(listing)], dtype=object) for name in ("id", "label", "x", "reason")}


def _decode(batch: dict, reader: Reader) -> dict:
    records: Records = batch["records"][0]
    xs, reasons = [], []
    for sample, reason in reader.read(records.keys):
        xs.append(b"" if reason else np.ascontiguousarray(sample).tobytes())
        reasons.append(reason)
    return {name: np.asarray(values, dtype=object) for name, values in
            (("id", records.ids), ("label", records.labels), ("x", xs), ("reason", reasons))}
