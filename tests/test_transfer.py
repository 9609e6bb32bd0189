"""Starting weights (model.weights, model.init_from) and fine-tuning: a run starts from another run's bundle
or a weights file, its head fresh where the classes differ; a file that does not fit, or is not weights, is
refused in one line before anything trains. The backbone is frozen through every epoch (train.freeze_epochs)
so that the trained bundle shows exactly what it started from."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from augtrain.artifacts.bundle import load_bundle
from augtrain.cli import app
from augtrain.training.parts import head_tensors
from conftest import JOBS_DIR, exports_with_parity, smoke
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("ray_session")
FROZEN = ["train.freeze_epochs=2"]  # smoke runs train 2 epochs


def run(tmp_path: Path, *overrides: str):
    return CliRunner().invoke(app, ["run", str(JOBS_DIR / "digits_cnn.yaml"), *smoke(tmp_path), *overrides])


def run_dir(result) -> Path:
    assert result.exit_code == 0, result.output
    return Path(result.output.split("run dir: ")[1].split()[0])


def low_digits(tmp_path: Path, digits) -> None:
    """low.npz: the digits 0-4 alone (5 classes)."""
    half = digits.target < 5
    np.savez(tmp_path / "low.npz", x=digits.images[half].astype(np.float32), y=digits.target[half])


def backbone(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters but its head's (for the digits CNN: all but 6.weight and 6.bias); batch norm's
    running statistics, which are no parameters, go on moving while the backbone is frozen."""
    head = head_tensors(model)
    return {name: p.detach() for name, p in model.named_parameters() if name not in head}


def test_init_from_a_run_with_other_classes_keeps_its_backbone_and_starts_a_fresh_head(finished_run, tmp_path, digits):
    source = load_bundle(finished_run)
    low_digits(tmp_path, digits)
    result = run(tmp_path, f"data.source={tmp_path / 'low.npz'}", f"model.init_from={finished_run}", *FROZEN)
    tuned = load_bundle(run_dir(result))
    assert "model.init_from: the head starts fresh: its classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) are not this run's" in result.output
    assert tuned.classes == ["0", "1", "2", "3", "4"]
    torch.testing.assert_close(backbone(tuned.model), backbone(source.model), rtol=0, atol=0)
    assert json.loads((run_dir(result) / "metrics.json").read_text())["test"]["accuracy"] > 0.5  # a head on its features


def test_a_weights_file_starts_the_run_and_one_that_does_not_fit_or_is_not_weights_is_refused(finished_run, tmp_path,
                                                                                            digits):
    source = load_bundle(finished_run)
    torch.save(source.model.state_dict(), tmp_path / "digits.pt")
    low_digits(tmp_path, digits)
    result = run(tmp_path, f"data.source={tmp_path / 'low.npz'}", f"model.weights={tmp_path / 'digits.pt'}", *FROZEN)
    started = load_bundle(run_dir(result))
    assert "model.weights: the head starts fresh (6.bias (10,) -> (5,), 6.weight (10, 64) -> (5, 64))" in result.output
    torch.testing.assert_close(backbone(started.model), backbone(source.model), rtol=0, atol=0)

    narrow = {name: t[..., :1] if name == "0.0.weight" else t for name, t in source.model.state_dict().items()}
    torch.save(narrow | {"extra.bias": torch.zeros(3)}, tmp_path / "misfit.pt")
    with open(tmp_path / "code.pt", "wb") as file:
        pickle.dump({"0.0.weight": print}, file)  # an object a weights-only load must not build
    bundles = len(list(tmp_path.glob("runs/*/*/model")))
    for name, message in [
        ("misfit.pt", "model.weights: the weights do not fit the model Sequential: "
                      "0.0.weight is (32, 1, 3, 1), the model's (32, 1, 3, 3); extra.bias not in the model"),
        ("code.pt", "not a safetensors or torch weights file"),
    ]:
        refused = run(tmp_path, f"model.weights={tmp_path / name}")
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert "Traceback" not in refused.output and len(list(tmp_path.glob("runs/*/*/model"))) == bundles


def test_a_backbone_trains_exports_with_parity_and_starts_another_run(tmp_path):
    small = ["model.name=resnet_small", "model.params={width: 8}"]
    first = run_dir(run(tmp_path, *small, "train.precision=bf16", "train.channels_last=true"))
    for fmt in ("onnx", "torchscript"):
        exports_with_parity(first, fmt)
    again = load_bundle(run_dir(run(tmp_path / "again", *small, f"model.init_from={first}", *FROZEN)))
    torch.testing.assert_close(backbone(again.model), backbone(load_bundle(first).model), rtol=0, atol=0)


def test_a_safetensors_file_in_bf16_fits_and_bytes_that_are_no_weights_are_refused(tmp_path):
    from augtrain.modalities import build_model
    from augtrain.training.initial import WeightsError, fitted, read_state_dict
    from safetensors.torch import save_file

    model = build_model("cnn", {}, (8, 8, 1), 10)
    save_file({name: t.to(torch.bfloat16) for name, t in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    state = fitted(read_state_dict(str(tmp_path / "w.safetensors")), model, "model.weights", print)
    assert set(state) == set(model.state_dict()) and state["0.0.weight"].dtype == torch.bfloat16
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(WeightsError, match="junk.safetensors: not a safetensors or torch weights file"):
        read_state_dict(str(tmp_path / "junk.safetensors"))
