"""The pieces of the train loop that need no Ray: optimizers, schedules, checkpoint weights."""

import pytest
import torch
from augtrain.config.spec import Train
from augtrain.modalities import build_model
from augtrain.training.checkpoint import WEIGHTS, load_weights
from augtrain.training.loop import make_optimizer, make_schedule, minibatches, take_rows
from safetensors.torch import save_file


def config(**fields):
    return Train(**fields).model_dump()


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_optimizers(name, cls):
    optimizer = make_optimizer(torch.nn.Linear(2, 2).parameters(), config(optimizer=name, lr=0.05))
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
    optimizer = make_optimizer(torch.nn.Linear(2, 2).parameters(), config(lr=0.1, **fields))
    schedule = make_schedule(optimizer, config(lr=0.1, **fields))
    seen = []
    for _ in expected:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx(expected, abs=1e-6)


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
