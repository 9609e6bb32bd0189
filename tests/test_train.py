"""The pieces of the train loop that need no Ray: optimizers, schedules, checkpoints."""

import io
import shutil
import sys

import pytest
import torch
from augtrain.config.spec import Train
from augtrain.modalities import build_model
from augtrain.training.checkpoint import WEIGHTS, load_weights, read_history
from augtrain.training.loop import make_optimizer, make_schedule, minibatches, take_rows
from augtrain.training.parts import head_constraint
from safetensors.torch import save_file


def config(**fields):
    return Train(**fields).model_dump()


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD),
                                       ("adadelta", torch.optim.Adadelta)])
def test_optimizers(name, cls):
    optimizer = make_optimizer(torch.nn.Linear(2, 2), config(optimizer=name, lr=0.05))
    assert type(optimizer) is cls and optimizer.param_groups[0]["lr"] == 0.05


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"schedule": "constant"}, [0.1] * 4),
        ({"schedule": "step", "step_size": 2, "gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
        ({"schedule": "cosine", "epochs": 4}, [0.1, 0.0853553, 0.05, 0.0146447]),
    ],
)
def test_schedules_per_epoch(fields, expected):
    optimizer = make_optimizer(torch.nn.Linear(2, 2), config(lr=0.1, **fields))
    schedule = make_schedule(optimizer, config(lr=0.1, **fields))
    seen = []
    for _ in expected:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx(expected, abs=1e-6)


def test_the_head_trains_alone_while_the_backbone_is_frozen_then_the_backbone_at_its_share_of_the_lr():
    """train.freeze_epochs, train.backbone_lr; biases and 1-D tensors never decay."""
    torch.manual_seed(0)
    model = build_model("cnn", {}, (8, 8, 1), 3)
    fields = {"lr": 0.1, "schedule": "constant", "freeze_epochs": 2, "backbone_lr": 0.1, "weight_decay": 0.01}
    optimizer = make_optimizer(model, config(**fields))
    schedule = make_schedule(optimizer, config(**fields))
    assert {(g["part"], g["weight_decay"]) for g in optimizer.param_groups} == {
        ("head", 0.01), ("head", 0.0), ("backbone", 0.01), ("backbone", 0.0)}
    assert all(p.ndim == 1 for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"])
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    head, first_conv = model[-1].weight, model[0][0].weight
    lrs, moved = [], []
    for _ in range(4):
        before = head.clone(), first_conv.clone()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        schedule.step()
        lrs.append(sorted({(g["part"], round(g["lr"], 6)) for g in optimizer.param_groups}))
        moved.append((not torch.equal(before[0], head), not torch.equal(before[1], first_conv)))
    assert moved == [(True, False), (True, False), (True, True), (True, True)]
    assert lrs[1] == [("backbone", 0.01), ("head", 0.1)]  # after epoch 1: the backbone thaws at a tenth
    assert optimizer.param_groups[0]["part"] == "head"  # the lr an epoch reports is the head's


def test_max_norm_scales_down_each_class_row_of_the_head_that_exceeds_it_and_no_other():
    model = build_model("cnn", {}, (8, 8, 1), 3)
    head = model[-1].weight
    with torch.no_grad():
        head[:2] *= 100 / head[:2].norm(dim=1, keepdim=True)  # rows of norm 100, 100 and about 0.7
    before, conv = head.clone(), model[0][0].weight.clone()
    head_constraint(model, 3.0)()
    torch.testing.assert_close(head.norm(dim=1)[:2], torch.tensor([3.0, 3.0]))
    torch.testing.assert_close(head[:2], before[:2] * 0.03)  # scaled, not reshaped
    assert torch.equal(head[2], before[2]) and torch.equal(model[0][0].weight, conv)


def test_weights_round_trip_through_safetensors(tmp_path):
    model = build_model("cnn", {}, (8, 8, 1), 10)
    save_file(model.state_dict(), str(tmp_path / WEIGHTS))
    fresh = load_weights(build_model("cnn", {}, (8, 8, 1), 10), tmp_path)
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(fresh(x), model(x))


def test_epochs_take_exact_rows_from_one_stream_cutting_straddling_batches():
    """Batches of 32 from a 3-epoch stream of 100 rows: every epoch gets exactly 100, in order, none lost."""
    rows = torch.arange(300)
    stream = iter({"x": rows[i : i + 32], "y": rows[i : i + 32]} for i in range(0, 300, 32))
    carry = []
    epochs = [torch.cat([b["y"] for b in take_rows(stream, 100, carry)]) for _ in range(3)]
    assert [len(e) for e in epochs] == [100, 100, 100]
    torch.testing.assert_close(torch.cat(epochs), rows)
    assert list(take_rows(stream, 100, carry)) == []  # the stream is spent: an empty epoch, no error


def test_chunks_are_cut_into_shuffled_batches_that_keep_each_row_with_its_label():
    """Two chunks of 100 rows -> batches of 32, 32, 32, 4 per chunk; every row once, in a new order, x with its y."""
    rows = torch.arange(200)
    chunks = iter({"x": rows[i : i + 100] * 10, "y": rows[i : i + 100]} for i in (0, 100))
    torch.manual_seed(0)
    batches = list(minibatches(chunks, 32))
    assert [len(b["y"]) for b in batches] == [32, 32, 32, 4] * 2
    seen = torch.cat([b["y"] for b in batches])
    torch.testing.assert_close(seen.sort().values, rows)
    assert not torch.equal(seen, rows)  # shuffled...
    assert set(seen[:100].tolist()) == set(range(100))  # ...within its chunk
    for batch in batches:
        torch.testing.assert_close(batch["x"], batch["y"] * 10)


@pytest.mark.parametrize("uri", [False, True], ids=["folder", "file-uri"])
def test_training_in_process_keeps_the_best_checkpoints_and_the_latest_and_resumes_from_the_latest(tmp_path, uri):
    """training/local.py: as Ray Train keeps them (the best `keep` by val accuracy, and the newest)."""
    from augtrain.training.local import LocalSession
    from augtrain.training.loop import ranking, save_checkpoint

    storage = f"file://{tmp_path}/run" if uri else str(tmp_path / "run")
    told, history = [], []
    session = LocalSession({}, storage, 2, ranking(), tell=lambda metrics, path: told.append((metrics["epoch"], path)))
    assert session.restored() is None
    model = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(model, config())
    schedule = make_schedule(optimizer, config())
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7, 0.8, 0.6]):
        history.append({"epoch": epoch, "val_accuracy": accuracy, "val_loss": 1 - accuracy})
        (tmp_path / "out").mkdir()
        save_checkpoint(str(tmp_path / "out"), model, optimizer, schedule, {"history": list(history)})
        session.report(history[-1], str(tmp_path / "out"))
        shutil.rmtree(tmp_path / "out")
    kept = sorted(p.name for p in (tmp_path / "run" / "train").iterdir())
    assert kept == ["checkpoint_000001", "checkpoint_000003", "checkpoint_000004"]  # 0.9, 0.8 and the newest
    assert [epoch for epoch, _ in told] == [0, 1, 2, 3, 4] and told[-1][1].endswith("checkpoint_000004")
    result = session.result()
    assert result.metrics["epoch"] == 4 and len(result.best_checkpoints) == 3

    (tmp_path / "run" / "train" / "checkpoint_000005").mkdir()  # the writer died before its epoch.json
    (tmp_path / "run" / "train" / "checkpoint_000005" / "model.safetensors").write_bytes(b"partial")
    again = LocalSession({}, storage, 2, ranking())  # a re-run of the interrupted run
    with again.restored().as_directory() as folder:
        assert read_history(folder) == history
    assert [metrics["val_accuracy"] for _, metrics in again.kept] == [0.9, 0.8, 0.6]
    assert not (tmp_path / "run" / "train" / "checkpoint_000005").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_a_run_shows_each_epoch_as_a_line_and_on_a_terminal_a_live_bar_with_an_eta(monkeypatch, terminal):
    from augtrain.training.progress import EpochLog

    out = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    shown = EpochLog(epochs=3, samples=100, first=1)  # a resumed run: epochs 2 and 3 to go
    for epoch in (1, 2):
        assert sum(len(b["y"]) for b in shown.counted({"y": [0] * 25} for _ in range(4))) == 100
        if terminal:
            assert shown.bar.tasks[0].completed == 100 * epoch
        shown.epoch({"epoch": epoch, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.9})
    shown.close()
    text = out.getvalue()
    assert "epoch 2/3  train loss 0.5000 acc 0.8000  val loss 0.4000 acc 0.9000" in text and "epoch 3/3" in text
    assert ("of the run, ETA" in text) == terminal and (shown.bar is not None) == terminal
