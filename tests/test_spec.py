from pathlib import Path

import pytest
import yaml
from augtrain.config.spec import (
    SpecError,
    apply_overrides,
    dump_job,
    load_job,
    parse_job,
    read_yaml,
)
from conftest import loaded_by, loaded_by_import

JOBS = sorted(Path(__file__).resolve().parents[1].glob("jobs/*.yaml"))


@pytest.mark.parametrize("job", JOBS, ids=lambda p: p.name)
def test_every_shipped_job_validates(job):
    spec = load_job(job)
    assert spec.run.name
    launch = "tune" if spec.tune else "run"
    assert job.read_text().startswith(f"# augtrain {launch} jobs/{job.name}")


def test_overrides_set_nested_fields_with_yaml_types(tmp_path):
    spec = load_job(JOBS[0], ["train.lr=3e-4", "scaling.workers=2", "train.optimizer=sgd"])
    assert (spec.train.lr, spec.scaling.workers, spec.train.optimizer) == (3e-4, 2, "sgd")
    assert apply_overrides({}, ["a.b.c=[1, 2]"]) == {"a": {"b": {"c": [1, 2]}}}


def test_resolved_spec_round_trips():
    spec = load_job(JOBS[0])
    assert parse_job(yaml.safe_load(dump_job(spec))) == spec


def test_every_bad_field_is_reported_with_its_dotted_path():
    raw = {
        "data": {"source": "sklearn-digits", "test_size": 2},
        "augment": [{"name": "Affine", "rotate": "abc"}, {"name": "NoSuchTransform"}],
        "model": {"name": "resnet9000"},
        "train": {"lr": -1, "optimizer": "lion", "epochz": 3},
    }
    with pytest.raises(SpecError) as caught:
        parse_job(raw, "bad.yaml")
    message = str(caught.value)
    assert message.startswith("bad.yaml: 7 bad field(s)")
    for expected in [
        "data.test_size: Input should be less than 1",
        "augment.0: Affine: rotate",
        "augment.1: unknown transform 'NoSuchTransform'",
        "model: unknown model 'resnet9000'",
        "train.lr: Input should be greater than 0",
        "train.optimizer: Input should be 'adam', 'adamw', 'sgd' or 'adadelta'",
        "train.epochz: unknown field",
    ]:
        assert expected in message


@pytest.mark.parametrize(
    "augment, problem",
    [
        ([{"name": "Affine", "rotat": 5}], "Affine: unknown parameter(s) ['rotat']"),
        ([{"name": "GaussNoise", "p": "often"}], "GaussNoise: p: Input should be a valid number"),
        ([{"name": "Compose"}], "unknown transform 'Compose'"),
    ],
)
def test_transforms_are_checked_by_name_and_parameters(augment, problem):
    with pytest.raises(SpecError, match=problem.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse_job({"data": {"source": "sklearn-digits"}, "augment": augment})


def test_model_parameters_are_checked():
    with pytest.raises(SpecError, match="model: model 'cnn': dropout must be float"):
        parse_job({"data": {"source": "x"}, "model": {"name": "cnn", "params": {"dropout": "high"}}})
    with pytest.raises(SpecError, match=r"has no parameter\(s\) \['depth'\]"):
        parse_job({"data": {"source": "x"}, "model": {"name": "cnn", "params": {"depth": 3}}})


def test_bad_files_and_overrides(tmp_path):
    with pytest.raises(SpecError, match="no such job file"):
        load_job(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_job(broken)
    with pytest.raises(SpecError, match="expected dotted.path=value"):
        load_job(JOBS[0], ["train.lr"])


def test_numbers_in_exponent_form_are_numbers_and_bounds_hold(tmp_path):
    job = tmp_path / "job.yaml"  # PyYAML reads 1e-4 (no dot) as text: a sweep refused its loguniform bounds
    job.write_text("data: {source: sklearn-digits}\ntrain: {lr: 1e-4}\ntune:\n  space:\n    train.lr: {loguniform: [1e-4, 1E-1]}\n")
    spec = load_job(job)
    assert spec.train.lr == 1e-4 and spec.tune.space["train.lr"] == {"loguniform": [1e-4, 0.1]}
    with pytest.raises(SpecError) as bad:
        load_job(JOBS[0], ["data.resize=[0, 0]", "train.lr=.inf", "data.encoding=base64", "data.image_shape=[-1, 2, 3]"])
    message = str(bad.value)
    assert "5 bad field(s)" in message and "data.resize.0: Input should be greater than 0" in message
    assert "train.lr: Input should be a finite number" in message and "data.image_shape.0: Input should be greater than 0" in message
    assert "data.encoding: base64: only encodings that keep ASCII as ASCII are read" in message


def test_text_that_reads_as_a_number_is_quoted_when_a_spec_is_written():
    job = parse_job({"data": {"source": "sklearn-digits", "label_column": "1e5"}, "run": {"name": "2e3"}})
    assert parse_job(read_yaml(dump_job(job), "spec.yaml")) == job  # a run's spec.yaml reads back as written


def test_elastic_workers_placement_and_storage_paths():
    spec = load_job(JOBS[0], ["scaling.workers=[1, 3]", "scaling.placement=pack"])
    assert spec.scaling.workers == (1, 3) and spec.scaling.max_workers == 3 and spec.scaling.placement == "pack"
    with pytest.raises(SpecError) as bad:
        load_job(JOBS[0], ["scaling.workers=[3, 1]", "run.storage_path=ftp://host/runs", "scaling.placement=far"])
    message = str(bad.value)
    assert "scaling.workers: expected a count >= 1 or [min, max] with 1 <= min <= max, got (3, 1)" in message
    assert "run.storage_path: ftp://host/runs: pyarrow opens s3://, gs://" in message
    assert load_job(JOBS[0], ["run.storage_path=s3://bucket/runs"]).run.storage_path == "s3://bucket/runs"
    assert "scaling.placement:" in message


def test_the_spec_imports_without_torch():
    """Every process that unpickles a job imports the spec; a default built at import ran the model check (torch)."""
    assert loaded_by_import("augtrain.config.spec", ["torch", "albumentations"]) == []


def test_checking_a_job_imports_no_torch():
    """`augtrain validate` answers in about a second (torch alone is 1.5 s): a model is checked by its builder's
    signature, and albumentations loads without its PyTorch helpers and its Hugging Face Hub mixin."""
    check_all = f"from augtrain.config.spec import load_job; [load_job(job) for job in {list(map(str, JOBS))!r}]"
    assert loaded_by(check_all, ["torch", "albumentations.pytorch", "huggingface_hub", "albumentations"]) == [
        "albumentations"]
    gunpoint = next(str(job) for job in JOBS if job.name == "gunpoint_lstm.yaml")
    assert loaded_by(f"from augtrain.config.spec import load_job; load_job({gunpoint!r})", ["albumentations"]) == []


def validate(*args):
    from augtrain.cli import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, ["validate", *map(str, args)])


def refused(result, problem):
    """One `error:` line (and the lines of the same message), exit 2, no traceback, bounded output."""
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and problem in result.output, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output) < 4000


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path):
    lines = ["data: {source: sklearn-digits}", "model:", "  name: cnn", "  params:", '    l0: &l0 ["lol","lol","lol"]']
    lines += [f"    l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # ~400 bytes; 9**8 * 3 strings once expanded
    assert bomb.stat().st_size < 600
    refused(validate(bomb), "expands to more than 20000 values")


def test_deep_nesting_and_duplicate_keys_are_refused(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("data: {source: sklearn-digits}\nmodel: {name: cnn, params: {x: " + "[" * 3000 + "]" * 3000 + "}}\n")
    refused(validate(deep), "deep.yaml:2: nested deeper than 32 levels")
    twice = tmp_path / "twice.yaml"
    twice.write_text("data: {source: sklearn-digits}\ntrain:\n  lr: 0.1\n  epochs: 3\n  lr: 100\n")
    refused(validate(twice), "duplicate key 'lr'")
    assert "line 5" in validate(twice).output


def test_a_huge_value_is_cut_in_the_error(tmp_path):
    job = tmp_path / "long.yaml"
    job.write_text("data: {source: sklearn-digits}\nmodel: {name: cnn, params: {dropout: '" + "x" * 500_000 + "'}}\n")
    refused(validate(job), "model: model 'cnn': dropout must be float")


def test_validate_turns_every_unreadable_input_into_one_error(tmp_path):
    refused(validate(JOBS[0], "train.lr=[1"), "override train.lr: not valid YAML")
    refused(validate(tmp_path), "a folder, not a job file")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"data: {source: sklearn-digits}\nrun: {name: caf\xe9}\n")
    refused(validate(latin), "not UTF-8 text (byte 47 is 0xe9)")
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    refused(validate(big), "larger than 1048576 bytes")


@pytest.mark.parametrize("name", ["..", "."])
def test_a_run_name_never_leaves_the_storage_path(name):
    with pytest.raises(SpecError, match="run.name: name '[.]+' is not a plain file name"):
        load_job(JOBS[0], [f"run.name={name}"])
    with pytest.raises(SpecError, match="run.name: String should match pattern"):
        load_job(JOBS[0], [f"run.name={name}/x"])


def test_a_ucr_name_is_a_name_not_a_path():
    with pytest.raises(SpecError, match="data.source: .*UCR/UEA dataset name '../../etc' is not a plain file name"):
        parse_job({"data": {"source": "ucr:../../etc"}})


@pytest.mark.parametrize("value", ["2001-13-45", "!!int abc", "!!bool maybe", "!!timestamp x", "9" * 5000])
def test_a_value_yaml_cannot_build_is_one_error(tmp_path, value):
    job = tmp_path / "job.yaml"
    job.write_text(f"data: {{source: sklearn-digits, seed: {value}}}\n")
    refused(validate(job), "not valid YAML")
