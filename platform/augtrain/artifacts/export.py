"""Export: a bundle's model as TorchScript or ONNX, written only once the file reproduces its logits.

Both formats take a free batch size and the same inputs as the model: images (N, C, H, W),
sequences (N, T, C) NaN-padded after each series' end, normalized as the bundle's stats say.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from augtrain.artifacts.bundle import Bundle, load_bundle
from augtrain.datasets.stream import read_split
from augtrain.evaluation.evaluate import fitting_manifest, run_dataset, run_dir_of

TOLERANCE = 1e-4  # largest max-abs logit difference from the PyTorch model an export may have
FORMATS = ("torchscript", "onnx")


class ExportError(ValueError):
    """A model that cannot be exported, or whose export does not reproduce its logits."""


def export_run(run: Path, fmt: str, out: Path | None = None, data: str | None = None,
               public_key: str | None = None) -> tuple[Path, float, int]:
    """Export a run's (or bundle's) model, checked on the test split of its own dataset or of `data`:
    the file written, the max abs logit difference and how many inputs it was checked on."""
    bundle = load_bundle(run, public_key)
    dataset = data or run_dataset(run)
    inputs, _ = read_split(dataset, fitting_manifest(bundle, dataset), bundle.stats, "test")
    out = out or run_dir_of(run) / "export" / ("model.onnx" if fmt == "onnx" else "model.torchscript.pt")
    return out, export_model(bundle, fmt, inputs, out), len(inputs)


def export_model(bundle: Bundle, fmt: str, inputs: np.ndarray | torch.Tensor, out: Path) -> float:
    """Write `bundle.model` as `fmt` to `out` if, loaded back, it gives the model's logits on `inputs`.

    Returns the max abs logit difference; raises ExportError (and writes nothing) past TOLERANCE.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    x = torch.as_tensor(inputs, dtype=torch.float32)
    if len(x) == 0:
        raise ExportError("no inputs to check the export on")
    # Built from a batch of two, checked on them all: unless there are exactly two inputs, a
    # batch size baked into the file fails the check.
    example = x[[0, -1]]
    name = bundle.job.model.name
    if fmt == "torchscript":
        data, logits = _torchscript(bundle.model, example, x)
    else:
        data, logits = _onnx(bundle.model, name, example, x)
    with torch.no_grad():
        expected = bundle.model(x).numpy()
    if logits.shape != expected.shape:
        raise ExportError(f"{fmt} export of {name!r} gives logits of shape {logits.shape}, not {expected.shape}")
    diff = float(np.abs(logits - expected).max())
    if not diff <= TOLERANCE:  # NaN fails too
        raise ExportError(f"{fmt} export of {name!r} differs from the PyTorch model by {diff:.3g} "
                          f"(max abs logit difference, tolerance {TOLERANCE:g}); nothing written")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return diff


def _torchscript(model: nn.Module, example: torch.Tensor, x: torch.Tensor) -> tuple[bytes, np.ndarray]:
    """The traced model's file and the logits of that file, loaded back, on `x`."""
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns that the RNN's shape checks may not generalize, and its own check reruns
        # the example only; the logits check on every input replaces both.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    loaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    with torch.no_grad():
        return buffer.getvalue(), loaded(x).numpy()


def _onnx(model: nn.Module, name: str, example: torch.Tensor, x: torch.Tensor) -> tuple[bytes, np.ndarray]:
    """The ONNX file (torch.export-based exporter) and its logits on `x` under ONNX Runtime."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"onnx export needs {', '.join(missing)}: pip install 'augtrain[onnx]'")
    if any(isinstance(m, nn.RNNBase) and m.bidirectional for m in model.modules()):
        raise ExportError(f"onnx export of {name!r} with bidirectional=True is not supported: torch.export cannot "
                          "trace packed sequences, and unpacked the reverse pass would start in the padding")
    import onnxruntime  # the optional onnx extra

    try:
        program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["x"],
                                    output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    except torch.onnx.errors.OnnxExporterError as exc:
        cause = exc.__cause__ or exc  # the exporter's own message is a multi-line guide
        line = str(cause).partition("\n")[0]
        raise ExportError(f"onnx export of {name!r} failed: {type(cause).__name__}: {line}") from exc
    data = program.model_proto.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return data, session.run(None, {"x": x.numpy()})[0]
