"""Image prediction inputs: a folder's files decoded in Ray Data tasks by collect's own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ray

from augtrain.datasets.files import walk
from augtrain.datasets.sources import SourceError
from augtrain.modalities.image.read import read_image


def image_rows(batch: dict, data, shape: list[int]) -> dict:
    """Decode a batch of image files (a Ray Data task); unreadable, misfit or refused files carry their reason."""
    images, reasons = [], []
    for path, refused in zip(batch["path"], batch["refused"]):
        image, reason = (None, refused) if refused else read_image(Path(path), data, shape[2], (shape[1], shape[0]))
        images.append(b"" if reason else image.tobytes())
        reasons.append(reason or "")
    return {"id": batch["id"], "label": batch["label"], "x": np.asarray(images, dtype=object),
            "reason": np.asarray(reasons, dtype=object)}


def folder_inputs(source: Path, data, shape: list[int]) -> tuple[ray.data.Dataset, dict]:
    """Any file below the folder (links, FIFOs and devices refused as collect refuses them); a sub-folder
    name is taken as the true label."""
    listing = walk(source, data.follow_links)
    if not listing.files and not listing.rejects:
        raise SourceError(f"{source}: no files to predict")
    items = [{"id": id_, "path": str(path), "label": Path(id_).parts[0] if len(Path(id_).parts) > 1 else "",
              "refused": ""} for id_, path in listing.files]
    items += [{"id": id_, "path": "", "label": "", "refused": reason} for id_, reason in listing.rejects]
    ds = ray.data.from_items(items).map_batches(
        image_rows, fn_kwargs={"data": data, "shape": shape}, batch_format="numpy", batch_size=64, num_cpus=0.5,
    )
    return ds, {"dtype": "uint8", "shape": shape}
