"""Mutated PNG, JPEG, TIFF and .ts bytes through collect's and predict's readers: nothing escapes."""

import pytest
from fuzz import fuzz

KINDS = {
    "empty file (0 bytes)", "not a readable image", "decompression bomb", "wrong mode", "wrong shape",
    "truncated or corrupt", "wrong dimensions", "unknown label", "non-numeric value", "not valid UTF-8",
    "malformed", "no values", "wrong channels", "infinite value", "a channel with no values",
}


@pytest.mark.filterwarnings("ignore")  # mutated files make Pillow warn about their metadata, by design
def test_two_thousand_mutations_each_become_a_sample_a_quarantine_reason_or_one_error(tmp_path):
    report = fuzz(2000, seed=0, folder=tmp_path)
    assert report.escapes == []
    assert report.count >= 2000
    quarantined = {o.removeprefix("quarantined: ") for o in report.outcomes if o.startswith("quarantined: ")}
    assert quarantined <= KINDS, quarantined - KINDS  # every reason is one of the kinds summaries group by
    # the mutations reach both sides of every reader: decoded samples, several kinds of reject, refused files
    assert report.outcomes["sample"] > 100 and len(quarantined) >= 5 and report.outcomes["refused"] > 0
