"""Audio sources: a folder of recordings (one sub-folder per class, or train/, val/, test/ holding them)
or a table naming each recording's file (data.path_column) and label. The driver lists the files (and
reads their headers when data.duration is not set); Ray Data tasks decode each one through libsndfile
(WAV, FLAC, OGG, MP3, ...), mix it down to mono, resample it with soxr and cut or pad it to one length.

A recording longer than the length keeps its loudest stretch (the window of most energy: for a spoken
word, the word rather than the silence around it); a shorter one is padded with silence on both sides.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from augtrain.config.spec import Data, Spectrogram
from augtrain.datasets.files import Refused, is_folder, open_record
from augtrain.datasets.layouts import file_table, folder
from augtrain.datasets.sources import MAX_SAMPLE_BYTES, Listing, Reader, SourceError
from augtrain.datasets.tasks import map_chunks
from augtrain.errors import clip

SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au"}
MAX_CHANNELS = 64
MAX_RATE = 768_000  # a header claiming more is not a recording
MAX_PEAK = 1e3  # decoded samples are about +-1; a float file's beyond this would overflow the features
COVERED = 0.95  # no data.duration: the length that 95 % of the recordings fit in


def listing(data: Data, labelled: bool, rate: int, length: int | None, spectrogram: Spectrogram) -> Listing:
    """`data.source` listed; its recordings decoded later at `rate` Hz to `length` samples (default: from
    the headers, read in Ray Data tasks)."""
    source = data.source
    if is_folder(source):
        files = folder(source, data, "recordings", labelled)
    elif data.path_column:
        files = file_table(source, data, labelled)
    else:
        raise SourceError(f"{source}: a table of recordings names each file in a column: set data.path_column")
    note = ""
    if length is None:
        files, seconds = with_durations(files, data)
        duration = max(0.1, math.ceil(float(np.quantile(seconds, COVERED)) * 10) / 10)
        length = round(duration * rate)
        note = (f"recordings of {min(seconds):.2f}-{max(seconds):.2f} s: all cut or padded to {duration:g} s "
                f"({COVERED:.0%} are no longer); set data.duration to choose")
    fields = {"sample_rate": rate, "duration": length / rate, "spectrogram": spectrogram.model_dump(mode="json")}
    files.reader = AudioReader(rate, length, data.max_duration, fields)
    files.note = note
    return files


def with_durations(files: Listing, data: Data) -> tuple[Listing, list[float]]:
    """The files whose headers read (the rest quarantined), and their durations in seconds."""
    headers = map_chunks(read_headers, files.keys, 256, max_duration=data.max_duration)
    out = Listing(Reader(), rejects=list(files.rejects), fingerprint=files.fingerprint)
    seconds = []
    for id_, label, key, given, (reason, duration) in zip(files.ids, files.labels, files.keys, files.given, headers):
        if reason:
            out.rejects.append((id_, reason))
        else:
            out.add(id_, label, key, given)
            seconds.append(duration)
    if not out.ids:
        raise SourceError(f"{data.source}: none of {len(files.ids) + len(files.rejects)} entries is a readable recording")
    return out, seconds


def read_headers(keys: list[str], max_duration: float) -> list:
    """[reason, None] or [None, seconds] of each file (a Ray Data task)."""
    out = []
    for key in keys:
        with _opened(key, max_duration) as (reason, sound):
            out.append([reason, None] if reason else [None, sound.frames / sound.samplerate])
    return out


class AudioReader(Reader):
    """Recording files -> (length, 1) float32 mono waveforms at `rate` Hz."""

    dtype = "float32"
    random_access = True

    def __init__(self, rate: int, length: int, max_duration: float, fields: dict):
        self.rate, self.length, self.max_duration, self.fields = rate, length, max_duration, fields
        self.shape = (length, 1)

    def read(self, keys: list):
        for key in keys:
            yield read_recording(key, self.rate, self.length, self.max_duration)


def read_recording(key: str, rate: int, length: int, max_duration: float) -> tuple[np.ndarray | None, str]:
    """One file as a (length, 1) float32 waveform at `rate` Hz, or (None, why it is quarantined)."""
    with _opened(key, max_duration) as (reason, sound):
        if reason:
            return None, reason
        try:
            wave = sound.read(dtype="float32", always_2d=True)
            source_rate = sound.samplerate
        except Exception as exc:  # a hostile file trips the decoder anywhere; it is quarantined, the rest go on
            return None, f"truncated or corrupt: {type(exc).__name__}: {clip(exc)}"
    if len(wave) == 0:
        return None, "empty recording: no samples decoded"
    if not np.isfinite(wave).all():
        return None, "non-finite samples (NaN or inf)"
    if (peak := float(np.abs(wave).max())) > MAX_PEAK:
        return None, f"out-of-range samples: peak {peak:.3g} (a recording's samples are about -1 to 1)"
    mono = wave.mean(1)
    if source_rate != rate:
        import soxr

        mono = soxr.resample(mono, source_rate, rate)
    if len(mono) == 0:
        return None, f"empty recording: shorter than one sample at {rate} Hz"
    return fit(mono, length)[:, None].astype(np.float32), ""


def fit(wave: np.ndarray, length: int) -> np.ndarray:
    """A 1-D waveform cut to its loudest `length` samples, or padded with silence on both sides."""
    if len(wave) > length:
        energy = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
        start = int(np.argmax(energy[length:] - energy[:-length]))
        return wave[start : start + length]
    missing = length - len(wave)
    return np.pad(wave, (missing // 2, missing - missing // 2))


@contextlib.contextmanager
def _opened(key: str, max_duration: float):
    """(None, the recording with its header read) or (why the file is quarantined, None)."""
    import soundfile

    with contextlib.ExitStack() as stack:
        try:
            file = open_record(stack, key)
            sound = stack.enter_context(soundfile.SoundFile(file))
            if not 1 <= sound.samplerate <= MAX_RATE or not 1 <= sound.channels <= MAX_CHANNELS:
                raise Refused(f"not a readable recording: header claims {sound.samplerate} Hz, {sound.channels} channels")
            if sound.frames <= 0:
                raise Refused("empty recording (0 frames)")
            if sound.frames / sound.samplerate > max_duration:
                raise Refused(f"too long: {sound.frames / sound.samplerate:.1f} s exceeds data.max_duration={max_duration:g}")
            if (decoded := sound.frames * sound.channels * 4) > MAX_SAMPLE_BYTES:  # a few KB of FLAC can claim GBs
                raise Refused(f"too large: {sound.frames} frames x {sound.channels} channels decode to {decoded:,} "
                              f"bytes (at most {MAX_SAMPLE_BYTES:,})")
        except Refused as refused:
            reason, sound = str(refused), None
        except soundfile.LibsndfileError as exc:  # "Format not recognised", a short header, ...
            reason, sound = f"not a readable recording: {clip(exc.error_string)}", None
        except Exception as exc:
            reason, sound = f"not a readable recording: {type(exc).__name__}: {clip(exc)}", None
        else:
            reason = None
        yield reason, sound
