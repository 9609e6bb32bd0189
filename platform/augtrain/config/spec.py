"""The job spec: one YAML file, validated into frozen pydantic models before Ray starts."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from augtrain.datasets.locations import URI_SCHEMES, check_name, is_uri
from augtrain.errors import BadInput, clip

MAX_TEXT_BYTES = 1 << 20  # the longest text data.max_text_bytes may allow

# A job file is written by a person: these bound what a hostile or broken one can make the parser do.
MAX_JOB_BYTES = 1 << 20
MAX_DEPTH = 32  # nested mappings and lists
MAX_VALUES = 20_000  # every value counted as often as YAML aliases repeat it


class SpecError(BadInput):
    """A job file that cannot run; the message lists every bad field by dotted path."""


class _JobLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only) that refuses a key given twice in one mapping, and reads 1e-4 as
    a number (YAML 1.2; PyYAML's YAML 1.1 wants 1.0e-4 and reads 1e-4 as text)."""

    def flatten_mapping(self, node):
        # checked before merge keys (<<) are flattened in: merged keys may repeat explicit ones
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key.value[:80]!r}", key.start_mark
                        )
                    seen.add(key.value)
        super().flatten_mapping(node)


class _JobDumper(yaml.SafeDumper):
    """PyYAML's safe dumper that quotes the text _JobLoader would read as a number (a run named 1e5)."""


for _yaml in (_JobLoader, _JobDumper):
    _yaml.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
    )


def read_yaml(text: str, origin: str) -> Any:
    """Plain data from YAML text, bounded in nesting and in size after aliases expand."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_JobLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(f"{origin}:{event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        loader = _JobLoader(text)
        loader._checked = set()
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SpecError(f"{origin}: not valid YAML: {exc}") from None
    except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
        # a tagged or implicit value PyYAML cannot build (`!!int abc`, `2001-13-45`, a 5000-digit number)
        raise SpecError(f"{origin}: not valid YAML: a value cannot be read: {clip(exc, 200)}") from None
    _check_size(raw, origin)
    return raw


def _check_size(raw: Any, origin: str) -> None:
    """Refuse data that aliases expand past MAX_VALUES values or MAX_DEPTH levels (a "billion laughs")."""
    stack, count = [(raw, 0)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES or depth > MAX_DEPTH:
            raise SpecError(f"{origin}: expands to more than {MAX_VALUES} values or {MAX_DEPTH} levels (YAML aliases?)")
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend((value, depth + 1) for _, value in children)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def known_scheme(location: str | None) -> str | None:
    """A folder, or a URI of a scheme that pyarrow's filesystems open (see augtrain.datasets.storage)."""
    scheme = location.split("://", 1)[0] if location and is_uri(location) else None
    if scheme and scheme not in URI_SCHEMES:
        raise ValueError(f"{location}: pyarrow opens {', '.join(s + '://' for s in URI_SCHEMES)} URIs, not {scheme}://")
    return location


def ucr_name(source: str) -> str:
    """`ucr:NAME` names a dataset, never a path."""
    if source.startswith("ucr:"):
        check_name(source.removeprefix("ucr:"), "the UCR/UEA dataset name")
    return source


class Spectrogram(Section):
    """How an audio model sees a recording: a log-mel spectrogram (or its MFCCs), computed by the data workers."""

    features: Literal["logmel", "mfcc"] = "logmel"
    n_mels: int = Field(64, ge=1, le=512)
    n_mfcc: int = Field(20, ge=1, le=128, description="MFCCs kept of the log-mel bands (features: mfcc)")
    n_fft: int = Field(512, ge=16, le=16384, description="window of each frame, in samples")
    hop_length: int = Field(160, ge=1, le=16384, description="samples between frames")
    f_min: float = Field(0.0, ge=0)
    f_max: float | None = Field(None, gt=0, description="default: half the sample rate")

    @model_validator(mode="after")
    def _bands_fit(self) -> Spectrogram:
        if self.f_max is not None and self.f_max <= self.f_min:
            raise ValueError(f"f_max ({self.f_max}) must be above f_min ({self.f_min})")
        if self.features == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        return self


class TextSettings(Section):
    """How texts become model input: a tokenizer trained on the train split (Hugging Face tokenizers), its
    ids cut or padded to `max_length`; the trained tokenizer ships in the model bundle."""

    tokenizer: Literal["word", "wordpiece", "bpe"] = Field("word", description="word: whitespace and punctuation "
                                                           "split words; wordpiece, bpe: learned sub-words")
    # bounded: a bundle's model is built (vocab_size x embedding) before its weights are compared
    vocab_size: int = Field(20_000, ge=16, le=250_000, description="at most this many tokens, specials included")
    min_frequency: int = Field(1, ge=1, description="rarer words are the unknown token")
    max_length: int = Field(64, ge=1, le=8192, description="tokens per text: longer texts are cut, shorter padded")
    lowercase: bool = True


def ascii_compatible(encoding: str) -> str:
    """A text encoding Python knows in which the ASCII bytes of a CSV (commas, quotes, newlines) stay ASCII."""
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
    try:
        kept = ',"\n'.encode(name) == b',"\n'
    except LookupError:  # a codec of bytes to bytes (base64, hex) or of text to text (rot13)
        kept = False
    if not kept:
        raise ValueError(f"{encoding}: only encodings that keep ASCII as ASCII are read (utf-8, latin-1, cp1252, ...)")
    return name


class Data(Section):
    source: str = Field(description="sklearn-digits, ucr:NAME, a folder of images, recordings or .txt texts, an "
                        ".npz, or a .csv/.parquet table")
    path: str | None = Field(
        None, description="collected dataset dir or URI (s3://, gs://, ...: see run.storage_path); default data/<source name>"
    )
    kind: str | None = Field(None, description="the modality that reads the source where several could (an .npz: "
                             "image or sequence, which reads x as (N, T[, C]); a table of files: image or audio)")
    archive: str | None = Field(None, description="UCR/UEA archive folder for ucr:NAME; default aeon's copy")
    normalize: Literal["channel", "series"] = Field(
        "channel", description="channel: train-split mean/std per channel; series: z-normalize each sequence"
    )
    label_column: str = "label"
    path_column: str | None = Field(None, description="a table's column naming each record's file (an image, a "
                                    "recording), relative to the table's folder")
    split_column: str | None = Field(None, description="a table's column that gives each row's split (train, val or "
                                     "test; empty: drawn like the rest)")
    feature_columns: list[str] | None = None
    image_shape: tuple[PositiveInt, PositiveInt, PositiveInt] | None = Field(None, description="(H, W, C) of table feature rows")
    resize: tuple[PositiveInt, PositiveInt] | None = Field(None, description="(H, W) every image is resized to; default: the size all "
                                           "images share, else their median size (at most 256 on the longer side)")
    channels: Literal[1, 3] | None = None
    max_pixels: int = Field(40_000_000, gt=0, description="larger images are quarantined as decompression bombs")
    sample_rate: int = Field(16000, ge=1000, le=192000, description="recordings are resampled to this many Hz")
    duration: float | None = Field(None, gt=0, le=600, description="seconds every recording is cut or padded to "
                                   "(its loudest stretch kept; silence added on both sides); default: 95 % of "
                                   "the recordings are no longer")
    max_duration: float = Field(600.0, gt=0, description="longer recordings are quarantined")
    spectrogram: Spectrogram = Spectrogram()
    text_column: str | None = Field(None, description="a table's column of texts (makes the table a text source; "
                                   "with data.kind: text, default: text)")
    encoding: str = Field("utf-8", description="of text files and CSV tables of texts (undecodable ones are "
                          "quarantined)")
    max_text_bytes: int = Field(4096, ge=16, le=MAX_TEXT_BYTES, description="longer texts (in UTF-8) are quarantined")
    text: TextSettings = TextSettings()
    follow_links: bool = Field(
        False, description="follow symlinks (and table paths) that lead outside the source folder; off: quarantined"
    )
    test_size: float = Field(0.2, gt=0, lt=1)
    val_size: float = Field(0.1, gt=0, lt=1)
    seed: int = 0

    _path = field_validator("path")(known_scheme)
    _source = field_validator("source")(ucr_name)
    _encoding = field_validator("encoding")(ascii_compatible)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str | None) -> str | None:
        from augtrain.modalities import modality

        return kind if kind is None else modality(kind).kind


class Transform(BaseModel):
    """One transform of a modality: `{name: Affine, rotate: [-10, 10], p: 0.5}`."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @model_validator(mode="after")
    def _known_transform(self) -> Transform:
        from augtrain.modalities import check_transform

        check_transform(self.name, self.params)
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Model(Section):
    name: str = "cnn"
    params: dict[str, Any] = {}
    # where a run's weights start (read on the driver when the run starts; a bundle's spec keeps them as text)
    weights: str | None = Field(None, description="a state dict to start from: a .safetensors file, or a torch "
                                "file (.pt/.pth, e.g. torchvision's; read with weights_only); a path or URI")
    init_from: str | None = Field(None, description="another augtrain run (or its bundle) to start from, "
                                  "checked as every bundle; its head starts fresh if the classes differ")
    vectors: str | None = Field(None, description="text models: word vectors (GloVe or word2vec text format) "
                                "the embedding starts from, for the tokens they hold")

    _locations = field_validator("weights", "init_from", "vectors")(known_scheme)

    @model_validator(mode="after")
    def _known_model(self) -> Model:
        from augtrain.modalities import check_model

        check_model(self.name, self.params)
        return self


class Train(Section):
    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "sgd", "adadelta"] = Field("adam", description="adadelta: rho 0.95, as Kim "
                                                                    "2014 trained sentence CNNs (lr 1.0 there)")
    weight_decay: float = Field(0.0, ge=0, description="of weights; biases and normalization layers never decay")
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    step_size: int = Field(10, ge=1, description="epochs between lr drops for schedule: step")
    gamma: float = Field(0.1, gt=0, le=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = Field(False, description="convolutions in NHWC memory format: on this project's CPU a "
                                "ResNet18 step at 64x64 took 31 % less time with precision bf16, 16 % more in fp32 "
                                "(benchmarks/RESULTS.md)")
    freeze_epochs: int = Field(0, ge=0, description="epochs that train only the head (the last linear layer) "
                               "before the whole model trains")
    backbone_lr: float = Field(1.0, gt=0, le=1, description="the learning rate of all but the head, as a share "
                               "of train.lr (fine-tuning: e.g. 0.1)")
    max_norm: float | None = Field(None, gt=0, description="after every step, each class's weights in the head "
                                   "are scaled down to at most this L2 norm (Kim 2014's constraint: 3)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="of the training loss; validation loss is plain")
    patience: int = Field(0, ge=0, description="stop after this many epochs without val improvement; 0 = off")
    keep_checkpoints: int = Field(2, ge=1)
    select: Literal["best", "last"] = Field(
        "best", description="the epoch `augtrain run` scores on test: best on validation, or the last one "
        "(for validation splits too small to rank epochs)"
    )
    seed: int = 0


class WorkerScaling(Section):
    workers: int | tuple[int, int] = Field(
        1, description="train workers, or [min, max] for an elastic group that grows and shrinks with the cluster"
    )
    placement: Literal["spread", "pack"] = Field("spread", description="spread workers over nodes, or pack them")
    use_gpu: bool = False
    cpus_per_worker: float | None = Field(None, gt=0, description="default: planned from the cluster")

    @field_validator("workers")
    @classmethod
    def _worker_counts(cls, workers: int | tuple[int, int]) -> int | tuple[int, int]:
        low, high = (workers, workers) if isinstance(workers, int) else workers
        if low < 1 or high < low:
            raise ValueError(f"expected a count >= 1 or [min, max] with 1 <= min <= max, got {workers}")
        return workers

    @property
    def max_workers(self) -> int:
        return self.workers if isinstance(self.workers, int) else self.workers[1]


class Eval(Section):
    kfold: int | None = Field(
        None, ge=2, description="K-fold cross-validation over train+val (stratified, seeded by data.seed)"
    )


class Run(Section):
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$")
    storage_path: str = Field(
        "runs",
        description="a local folder, a shared one (NFS) that every node of a cluster mounts, or a URI pyarrow opens "
        "(s3://, gs://, abfs://, hdfs://): checkpoints go there directly, the run's other files when it ends",
    )
    max_failures: int = Field(0, ge=-1, description="restarts from the last checkpoint after a lost worker or node")
    mlflow: bool = Field(False, description="also log the run to MLflow (MLFLOW_TRACKING_URI, default <storage_path>/mlruns)")

    _storage_path = field_validator("storage_path")(known_scheme)
    _name = field_validator("name")(check_name)


DISTRIBUTIONS = {"loguniform", "uniform", "randint", "choice", "grid"}
# fields a sweep sets once for all its trials (their data, plan, starting weights, run folder and evaluation)
SWEPT_ONCE = ("data.", "eval.", "scaling.", "run.", "model.weights", "model.init_from", "model.vectors")


class Scheduler(Section):
    name: Literal["asha", "none"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class Tune(Section):
    """A sweep: `space` maps dotted spec fields to one distribution each, e.g. `{loguniform: [1e-4, 1e-1]}`."""

    space: dict[str, dict[str, list]]
    samples: int = Field(1, ge=1, description="random samples (grid: repeats of the grid)")
    metric: Literal["val_accuracy", "val_loss", "train_accuracy", "train_loss"] = "val_accuracy"
    mode: Literal["max", "min"] = Field(description="default: min for a loss, max for an accuracy")
    search: Literal["random", "grid", "optuna"] = "random"
    scheduler: Scheduler = Scheduler()
    max_concurrent: int | None = Field(None, ge=1, description="default: planned from the cluster")

    @field_validator("space")
    @classmethod
    def _distributions(cls, space: dict) -> dict:
        if not space:
            raise ValueError("empty search space")
        for path, spec in space.items():
            if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
                raise ValueError(f"{path}: expected one of {sorted(DISTRIBUTIONS)}, got {sorted(spec)}")
            (kind, args), = spec.items()
            if kind in {"choice", "grid"}:
                if not args:
                    raise ValueError(f"{path}: {kind} needs at least one value")
            elif len(args) != 2 or not all(isinstance(a, (int, float)) for a in args) or args[0] >= args[1]:
                raise ValueError(f"{path}: {kind} needs [low, high] numbers with low < high, got {args}")
            elif kind == "loguniform" and args[0] <= 0:
                raise ValueError(f"{path}: loguniform needs low > 0, got {args[0]}")
            elif kind == "randint" and not all(isinstance(a, int) for a in args):
                raise ValueError(f"{path}: randint needs integer bounds, got {args}")
        return space

    @model_validator(mode="before")
    @classmethod
    def _mode_of_the_metric(cls, raw: Any) -> Any:
        """Unless given, mode follows the metric (a sweep that maximized a loss picked its worst trial)."""
        if isinstance(raw, dict) and raw.get("mode") is None:
            raw = {**raw, "mode": "min" if str(raw.get("metric", "")).endswith("_loss") else "max"}
        return raw

    def candidates(self, path: str) -> list:
        """The values of `path` worth checking before any trial starts: every choice, or both bounds."""
        return list(next(iter(self.space[path].values())))


class Job(Section):
    data: Data
    augment: list[Transform] = []
    model: Model = Field(default_factory=Model)  # not built at import: its check imports torch
    train: Train = Train()
    scaling: WorkerScaling = WorkerScaling()
    eval: Eval = Eval()
    run: Run = Run()
    tune: Tune | None = None

    @field_validator("augment", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _kinds_agree(self) -> Job:
        from augtrain.modalities import for_model, for_transform

        takes = for_model(self.model.name)
        for i, transform in enumerate(self.augment):
            if for_transform(transform.name) != takes:
                kind = for_transform(transform.name).samples_name
                raise ValueError(
                    f"augment.{i}: {transform.name} is for {kind} but model {self.model.name!r} takes {takes.samples_name}"
                )
        return self

    @model_validator(mode="after")
    def _kfold_or_tune(self) -> Job:
        if self.eval.kfold and self.tune:
            raise ValueError("eval.kfold: a sweep is not cross-validated; run k-fold with the best trial's values")
        return self

    @model_validator(mode="after")
    def _space_fits_the_spec(self) -> Job:
        if self.tune is None:
            return self
        base = self.model_dump(mode="json", exclude={"tune"})
        for path in self.tune.space:
            if not _has_path(base, path):
                raise ValueError(f"tune.space: unknown field {path!r}")
            if path.startswith(SWEPT_ONCE):  # every trial would silently run with the base job's value
                raise ValueError(f"tune.space: {path}: a sweep collects its data, plans its workers, reads its "
                                 "starting weights and names its run once for every trial; sweep it as separate runs")
            for value in self.tune.candidates(path):
                try:
                    Job.model_validate(set_dotted(copy.deepcopy(base), path, value))
                except ValidationError as exc:
                    problem = "; ".join(_describe(e) for e in exc.errors())
                    raise ValueError(f"tune.space.{path}: {value!r} is not valid: {problem}") from None
        return self

    @model_validator(mode="after")
    def _grace_within_the_epochs(self) -> Job:
        if self.tune and self.tune.scheduler.name == "asha" and self.tune.scheduler.grace_period > self.most_epochs():
            raise ValueError(f"tune.scheduler.grace_period: {self.tune.scheduler.grace_period} epochs, more than a "
                             f"trial trains ({self.most_epochs()})")
        return self

    def most_epochs(self) -> int:
        """The most epochs any trial of this job's sweep trains (ASHA's horizon)."""
        swept = self.tune.candidates("train.epochs") if self.tune and "train.epochs" in self.tune.space else []
        return max([self.train.epochs, *(int(n) for n in swept)])


def _has_path(raw: dict, path: str) -> bool:
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict) and (leaf in node or parents == ["model", "params"])


def set_dotted(raw: dict, path: str, value: Any) -> dict:
    """Set `value` at `a.b.c` in a nested dict, creating sections on the way."""
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"bad override {path}: {part} is not a section")
    node[leaf] = value
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set `a.b.c=value` pairs into a nested dict; values are parsed as YAML scalars."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise SpecError(f"bad override {item!r}: expected dotted.path=value")
        set_dotted(raw, key, read_yaml(value, f"override {key}"))
    return raw


def problems(error: ValidationError) -> str:
    """A pydantic error as one line: `field: message; field: message`."""
    return "; ".join(_describe(e) for e in error.errors())


def _describe(error: dict) -> str:
    path = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    # a message may quote the offending value or key, which can be any size
    return clip(f"{path}: {message}" if path else message, 300)


def parse_job(raw: Any, origin: str = "job") -> Job:
    """Validate a raw mapping into a Job, or raise SpecError listing every bad field."""
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Job.model_validate(raw)
    except ValidationError as exc:
        lines = sorted({_describe(e) for e in exc.errors()})
        raise SpecError(f"{origin}: {len(lines)} bad field(s)\n  " + "\n  ".join(lines)) from None


def load_job(path: str | Path, overrides: list[str] = ()) -> Job:
    """Read a job YAML file, apply dotted overrides, validate."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_JOB_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such job file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: a folder, not a job file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the job file: {exc.strerror}") from None
    if len(data) > MAX_JOB_BYTES:
        raise SpecError(f"{path}: larger than {MAX_JOB_BYTES} bytes; a job file is a few lines of YAML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start + 1} is {data[exc.start]:#04x})") from None
    raw = read_yaml(text, str(path))
    if isinstance(raw, dict):
        raw = apply_overrides(raw, list(overrides))
    return parse_job(raw, str(path))


def flatten(tree, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted.path, value) rows of a nested spec; lists of sections (augment) are indexed."""
    if isinstance(tree, dict) or (isinstance(tree, list) and tree and all(isinstance(t, dict) for t in tree)):
        items = tree.items() if isinstance(tree, dict) else enumerate(tree)
        return [row for key, value in items for row in flatten(value, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), json.dumps(tree) if isinstance(tree, list) else tree)]


def headline(job: Job) -> str:
    """The job in one line, for the top of what a run prints (the whole spec: `augtrain validate`, RUN/spec.yaml)."""
    train = job.train
    augment = ", ".join(t.name for t in job.augment) or "none"
    sweep = f"; sweep over {', '.join(job.tune.space)} ({job.tune.search}, {job.tune.samples} sample(s))" if job.tune else ""
    folds = f"; {job.eval.kfold}-fold cross-validation" if job.eval.kfold else ""
    return (f"job {job.run.name}: {job.data.source} -> model {job.model.name}, {train.epochs} epochs of batch {train.batch_size} "
            f"({train.optimizer}, lr {train.lr:g}, {train.schedule}), augment: {augment}, seed {train.seed}{folds}{sweep}")


def dump_job(job: Job) -> str:
    """The resolved spec as YAML, every default filled in."""
    return yaml.dump(job.model_dump(mode="json"), Dumper=_JobDumper, sort_keys=False)
