"""Text: reviews the tests generate (tests/texts.py) collected from a table and a folder, bad rows
quarantined with their lines, augmented (EDA), tokenized, trained on, exported, predicted and explained."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from augtrain.artifacts.bundle import load_bundle
from augtrain.cli import app
from augtrain.config.spec import Data, SpecError, parse_job
from augtrain.datasets.collect import collect
from augtrain.datasets.format import decode_samples, split_files
from augtrain.modalities.text import TEXT
from augtrain.modalities.text.augment import TextAugmenter
from augtrain.modalities.text.read import texts
from augtrain.modalities.text.tokens import encode, token_counts, tokenizer_problem
from augtrain.modalities.text.wordnet import synonyms
from augtrain.serving.request import sent_inputs
from conftest import exports_with_parity
from texts import reviews, write_csv, write_folder
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("ray_session")
EDA = [{"name": "SynonymReplacement", "alpha": 0.2, "p": 1.0}, {"name": "RandomInsertion", "alpha": 0.2, "p": 1.0},
       {"name": "RandomSwap", "alpha": 0.2, "p": 1.0}, {"name": "RandomDeletion", "alpha": 0.2, "p": 1.0}]


def stored_texts(dataset: Path) -> dict[str, str]:
    """{id: text} of every split of a collected dataset."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    table = pq.ParquetDataset([f for s in ("train", "val", "test") for f in split_files(dataset, s)]).read()
    return dict(zip(table.column("id").to_pylist(), texts(decode_samples(table.column("x").to_pylist(), manifest))))


def test_a_table_quarantines_each_bad_row_with_its_line_and_keeps_the_rest(tmp_path):
    rows = reviews(40)
    source = write_csv(tmp_path / "reviews.csv", rows)
    with open(source, "ab") as file:  # lines 42-46, after the header and 40 good rows
        file.write(b'"   ",pos\n')  # blank text
        file.write(b'"caf\xe9 au lait",neg\n')  # Latin-1, not UTF-8
        file.write(("x" * 300 + ",pos\n").encode())
        file.write(b"a fine film,\n")  # no label
        file.write('"na\u00efve, and \u201cquoted\u201d",pos\n'.encode())
        file.write(("y" * 200_000 + ",neg\n").encode())  # longer than a CSV field may be by default
    collected = collect(Data(source=str(source), text_column="text", max_text_bytes=128), tmp_path / "out")
    assert collected.manifest["kind"] == "text" and collected.manifest["shape"] == [128]
    quarantine = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()}
    assert quarantine == {
        "reviews.csv:42": "empty text",
        "reviews.csv:43": "not valid utf-8: byte 4 (b'\\xe9')",
        "reviews.csv:44": "too long: 300 bytes of UTF-8 exceed data.max_text_bytes=128",
        "reviews.csv:45": "missing label: column label",
        "reviews.csv:47": "too long: 200000 bytes of UTF-8 exceed data.max_text_bytes=128",
    }
    collected_texts = stored_texts(tmp_path / "out")
    assert collected_texts["reviews.csv:46"] == "na\u00efve, and \u201cquoted\u201d"
    assert [collected_texts[f"reviews.csv:{i + 2}"] for i in range(40)] == [text for text, _ in rows]


def test_a_declared_encoding_decodes_the_table_and_a_folder_of_files_is_a_source_too(tmp_path):
    source = write_csv(tmp_path / "latin.csv", [("caf\xe9 cr\xe8me", "pos"), ("na\xefve", "neg")] * 4, "latin-1")
    collect(Data(source=str(source), text_column="text", encoding="latin-1"), tmp_path / "latin")
    assert set(stored_texts(tmp_path / "latin").values()) == {"caf\xe9 cr\xe8me", "na\xefve"}

    folder = write_folder(tmp_path / "folder", reviews(10))
    (folder / "pos" / "empty.txt").write_bytes(b"")
    (folder / "neg" / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (folder / "loose.txt").write_text("not in a class folder")
    (folder / "pos" / "bom.txt").write_bytes("\ufeffa film saved with a byte-order mark".encode())
    collected = collect(Data(source=str(folder)), tmp_path / "from_folder")
    assert collected.manifest["kind"] == "text"
    quarantine = {r["id"]: r["reason"] for r in pq.read_table(tmp_path / "from_folder" / "quarantine.parquet").to_pylist()}
    assert quarantine == {"pos/empty.txt": "empty file (0 bytes)", "neg/binary.txt": "not valid utf-8: byte 1 (b'\\xff')",
                          "loose.txt": "not in a class sub-folder"}
    assert stored_texts(tmp_path / "from_folder")["pos/0000.txt"] == reviews(10)[0][0]
    assert stored_texts(tmp_path / "from_folder")["pos/bom.txt"] == "a film saved with a byte-order mark"


def test_eda_is_seeded_changes_words_and_takes_synonyms_from_wordnet():
    assert {"film", "picture", "flick"} <= set(synonyms("movie")) and synonyms("the") == ()
    batch = [text for text, _ in reviews(20)]
    first, again, other = (TextAugmenter(EDA, seed)(batch) for seed in (1, 1, 2))
    assert first == again and first != other and first != batch
    # the judgement words come back as themselves or as WordNet synonyms, never as stop words
    swapped = TextAugmenter([{"name": "RandomSwap", "alpha": 0.5, "p": 1.0}], 3)(batch)
    assert all(sorted(a.split()) == sorted(b.split()) and a != b for a, b in zip(swapped, batch))
    deleted = TextAugmenter([{"name": "RandomDeletion", "alpha": 0.99, "p": 1.0}], 3)(batch)
    assert all(len(d.split()) >= 1 and set(d.split()) <= set(b.split()) for d, b in zip(deleted, batch))
    # a text no transform changed is the text itself (str.split takes \x1f for a space, the tokenizer does not)
    assert TextAugmenter([{"name": "RandomSwap", "alpha": 0.5, "p": 0.0}], 3)(["a\x1fb  c"]) == ["a\x1fb  c"]


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_a_subword_vocabulary_of_thousands_of_characters_stays_within_vocab_size(kind):
    """Subword trainers keep every character they meet: 3,000 CJK characters would be 3,000+ ids."""
    from augtrain.config.spec import TextSettings
    from augtrain.modalities.text.tokens import train_tokenizer

    settings = TextSettings(tokenizer=kind, vocab_size=1000)
    trained = train_tokenizer((chr(0x4E00 + i) * 2 for i in range(3000)), settings)
    assert tokenizer_problem({"tokenizer": trained}, 1000) is None
    assert encode([chr(0x4E00) * 2, chr(0x4E00 + 2999)], trained, 4).max() < 1000


def test_a_spec_names_bad_text_settings():
    with pytest.raises(SpecError, match="data.encoding: .*utf-16: only encodings that keep ASCII"):
        parse_job({"data": {"source": "x.csv", "text_column": "t", "encoding": "utf-16"}, "model": {"name": "text_cnn"}})
    with pytest.raises(SpecError, match="RandomSwap: alpha: Input should be less than or equal to 1"):
        parse_job({"data": {"source": "x.csv", "text_column": "t"}, "model": {"name": "text_gru"},
                       "augment": [{"name": "RandomSwap", "alpha": 2}]})
    with pytest.raises(SpecError, match="model.params|widths"):
        parse_job({"data": {"source": "x.csv"}, "model": {"name": "text_cnn", "params": {"widths": [0]}}})


def test_kims_cnn_sees_the_same_text_alike_however_much_padding_follows_it():
    """Max-over-time pooling leaves out the windows that end in padding: more padding, same logits."""
    from augtrain.modalities.text.models import text_cnn

    torch.manual_seed(0)
    model = text_cnn((8, 50), 3, embedding=16, maps=4).eval()
    words = torch.tensor([[5.0, 6, 7]])
    short, long = (torch.cat([words, torch.zeros(1, n)], 1) for n in (2, 9))
    torch.testing.assert_close(model(short), model(long))
    last_word = words.clone()
    last_word[0, 2] = 9  # the last word counts
    assert not torch.equal(model(torch.cat([last_word, torch.zeros(1, 2)], 1)), model(short))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A short text_lstm run with every EDA transform on 400 generated reviews."""
    root = tmp_path_factory.mktemp("text")
    source = write_csv(root / "reviews.csv", reviews(400))
    job = root / "job.yaml"
    job.write_text(json.dumps({
        "data": {"source": str(source), "text_column": "text", "path": str(root / "data"), "max_text_bytes": 256,
                 "text": {"max_length": 24}},
        "augment": [{**transform, "alpha": 0.1, "p": 0.5} for transform in EDA],
        "model": {"name": "text_lstm"},
        "train": {"epochs": 5, "lr": 0.003, "batch_size": 32},
        "run": {"name": "reviews", "storage_path": str(root / "runs")},
    }))
    result = CliRunner().invoke(app, ["run", str(job)])
    assert result.exit_code == 0, result.output
    return root, Path(result.output.split("run dir: ")[1].split()[0])


def test_a_short_run_learns_and_its_bundle_tokenizes_as_training_did(text_run):
    root, run_dir = text_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.8  # 2 classes; train.seed 0-3 measured 0.86, 0.99, 0.97, 0.96
    bundle = load_bundle(run_dir)
    trained = json.loads((run_dir / "normalization.json").read_text())["tokenizer"]
    assert bundle.stats == {"tokenizer": trained} and bundle.modality.settings.max_length == 24
    ids = encode(["The movie was great!", "zyzzyva"], trained, 24)
    assert ids.shape == (2, 24) and (ids[0, :5] > 1).all() and ids[1, 0] == 1 and not ids[:, 5:].any()
    # "[PAD]" in a text is text: the padding id 0 never comes before the text's last token
    padded = encode(["[PAD] [PAD] great", "great [PAD]"], trained, 24)
    assert [int((row != 0).sum()) for row in padded] == [7, 4] and not padded[0, 7:].any() and not padded[1, 4:].any()
    assert "more than the model embeds (10)" in tokenizer_problem({"tokenizer": trained}, 10)
    assert tokenizer_problem({"tokenizer": "{}"}, 20000).startswith("normalization.json: not a tokenizer")
    assert (run_dir / "explain" / "test_samples.png").stat().st_size > 10_000


def test_the_report_shows_the_lengths_of_the_training_texts_in_tokens(text_run):
    _, run_dir = text_run
    assert 'alt="a profile of the training data"' in (run_dir / "report.html").read_text()
    trained = json.loads((run_dir / "normalization.json").read_text())["tokenizer"]
    long = " ".join(["movie"] * 30)  # beyond max_length (24): counted whole
    assert token_counts([["The movie was great!"], [long]], trained) == [5, 30]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_pytorch(text_run, fmt):
    exports_with_parity(text_run[1], fmt)


def test_predict_a_table_and_a_folder(text_run, tmp_path):
    root, run_dir = text_run
    rows = reviews(40, seed=7)
    for source in (write_csv(tmp_path / "new.csv", rows), write_folder(tmp_path / "new", rows)):
        out = tmp_path / f"{source.name}.parquet"
        result = CliRunner().invoke(app, ["predict", str(run_dir), str(source), "--out", str(out)])
        assert result.exit_code == 0, result.output
        table = pq.read_table(out).to_pylist()
        truth = {f"new.csv:{i + 2}": label for i, (_, label) in enumerate(rows)} | {
            f"{label}/{i:04d}.txt": label for i, (_, label) in enumerate(rows)}
        assert len(table) == 40 and all(row["label"] == truth[row["id"]] for row in table)
        assert np.mean([row["predicted"] == row["label"] for row in table]) >= 0.9


def test_word_vectors_start_the_embedding_and_another_runs_rows_follow_their_tokens(text_run, tmp_path):
    """model.vectors fills each token's row with its word's vector; model.init_from from that run, with another
    tokenizer (cased), moves each row to the token's new id. The embedding is frozen (train.freeze_epochs) to
    show it; a vectors file with a short line is refused naming its line."""
    root, _ = text_run
    rng = np.random.default_rng(0)
    vectors = {word: rng.normal(size=8).round(4) for word in ("great", "awful", "movie", "zyzzyva")}
    file = tmp_path / "vectors.txt"
    file.write_text("4 8\n" + "".join(f"{word} {' '.join(map(str, v))}\n" for word, v in vectors.items()))

    def trained(name: str, text: dict, *overrides: str):
        result = CliRunner().invoke(app, [
            "run", str(root / "job.yaml"), "model.name=text_cnn", "model.params={embedding: 8, maps: 4}",
            "augment=[]", "train.epochs=1", "train.freeze_epochs=1", f"data.path={tmp_path / name}",
            f"data.text={json.dumps({'max_length': 24, **text})}", *overrides])
        assert result.exit_code == 0, result.output
        run_dir = Path(result.output.split("run dir: ")[1].split()[0])
        bundle = load_bundle(run_dir)
        vocab = json.loads(bundle.stats["tokenizer"])["model"]["vocab"]
        return bundle.model.embedding.weight.detach(), vocab, result.output, run_dir

    rows, vocab, said, lower_run = trained("lower", {}, f"model.vectors={file}")
    assert "model.vectors: 3 of" in said  # zyzzyva is in no review
    for word in ("great", "awful", "movie"):
        torch.testing.assert_close(rows[vocab[word]], torch.tensor(vectors[word], dtype=torch.float32))
    cased_rows, cased_vocab, _, _ = trained("cased", {"lowercase": False}, f"model.init_from={lower_run}")
    assert cased_vocab != vocab and "The" in cased_vocab
    for word in ("great", "awful", "movie", "film"):
        torch.testing.assert_close(cased_rows[cased_vocab[word]], rows[vocab[word]], rtol=0, atol=0)

    file.write_text("great " + " ".join(["0.5"] * 12) + "\n")  # 12-d vectors for an 8-d embedding
    refused = CliRunner().invoke(app, ["run", str(root / "job.yaml"), "model.name=text_cnn",
                                       "model.params={embedding: 8}", f"model.vectors={file}"])
    assert refused.exit_code == 2 and f"model.vectors: {file}:1: vectors of 12 numbers; the embedding has 8" in refused.output
    file.write_text("great 1 2 3 4 5 6 7 8\nawful 1 2\n")
    refused = CliRunner().invoke(app, ["run", str(root / "job.yaml"), "model.name=text_cnn",
                                       "model.params={embedding: 8}", f"model.vectors={file}"])
    assert refused.exit_code == 2 and f"model.vectors: {file}:2: 2 numbers after the word; the embedding has 8" in refused.output


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_dataset_collected_with_other_tokenizer_settings_is_refused(text_run, tmp_path, command):
    """Its texts would become ids cut to another max_length than the model trained on."""
    root, run_dir = text_run
    collect(Data(source=str(root / "reviews.csv"), text_column="text", max_text_bytes=256,
                 text={"max_length": 32}), tmp_path / "other")
    result = CliRunner().invoke(app, [command, str(run_dir), "--data", str(tmp_path / "other")])
    assert result.exit_code == 2 and "collected as text with" in result.output and '"max_length": 32' in result.output
    assert "Traceback" not in result.output


def test_a_served_text_decodes_as_collected(text_run):
    _, run_dir = text_run
    bundle = load_bundle(run_dir)
    (name, value), = sent_inputs("application/json", b'{"inputs": [{"text": "The plot was dull."}]}')
    sample, reason = bundle.modality.decode_input(value, bundle.job.data, bundle.shape)
    assert reason == "" and texts(sample[None]) == ["The plot was dull."]
    assert bundle.modality.decode_input({"text": "x" * 300}, bundle.job.data, bundle.shape)[1].startswith("too long")
    assert bundle.modality.decode_input([1, 2], bundle.job.data, bundle.shape)[1].startswith("expected a text")
    assert bundle.modality.decode_input(b"\xff", bundle.job.data, bundle.shape)[1].startswith("not valid utf-8")
    logits = bundle.model(torch.from_numpy(bundle.modality.ship(sample[None], bundle.stats)))
    assert bundle.classes[int(logits.argmax())] == "neg"
    assert TEXT.owns_transform("RandomSwap") and not TEXT.owns_transform("Affine")
