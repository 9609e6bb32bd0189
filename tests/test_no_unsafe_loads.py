"""A grep-level guarantee: nothing under the package can unpickle or run code from a file it loads."""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "augtrain"
FORBIDDEN = {
    "allow_pickle=True": r"allow_pickle\s*=\s*True",
    "pickle.load / pickle.loads": r"\b(cloud)?pickle\.loads?\b",
    "yaml.load / yaml.unsafe_load / full_load": r"\byaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all)\b",
    "yaml's unsafe loaders": r"\byaml\.(Unsafe|Full)?Loader\b|\b(Unsafe|Full)Loader\b",
    "joblib.load / dill / shelve / marshal": r"\b(joblib\.load|dill|shelve|marshal)\b",
    "np.load without allow_pickle=False": r"np\.load\((?![^)]*allow_pickle=False)",
}


def calls(text: str, name: str) -> list[str]:
    """The full argument text of every call `name(...)` in `text` (nested parentheses included)."""
    found = []
    for match in re.finditer(rf"\b{re.escape(name)}\(", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        found.append(text[match.start():end])
    return found


def test_no_unsafe_load_anywhere_in_the_package():
    sources = {path: path.read_text() for path in PACKAGE.rglob("*.py")}
    assert len(sources) > 20
    offences = [
        f"{path.relative_to(PACKAGE)}: {what}"
        for path, text in sources.items()
        for what, pattern in FORBIDDEN.items()
        if re.search(pattern, text)
    ]
    offences += [
        f"{path.relative_to(PACKAGE)}: {call[:60]}"
        for path, text in sources.items()
        for call in calls(text, "torch.load")
        if "weights_only=True" not in call
    ]
    assert offences == []


def test_the_checks_catch_what_they_look_for():
    """The patterns find each unsafe form (a check that cannot fail guarantees nothing)."""
    unsafe = [
        "np.load(path, allow_pickle=True)", "pickle.loads(data)", "yaml.load(text)", "yaml.unsafe_load(text)",
        "joblib.load(f)", "np.load(path)", "Loader=yaml.UnsafeLoader", "yaml.Loader", "FullLoader(text)",
    ]
    for line in unsafe:
        assert any(re.search(pattern, line) for pattern in FORBIDDEN.values()), line
    assert not any(re.search(p, "np.load(file, allow_pickle=False)") for p in FORBIDDEN.values())
    for safe in ("class _JobLoader(yaml.SafeLoader):", "yaml.parse(text, Loader=_JobLoader)"):
        assert not any(re.search(p, safe) for p in FORBIDDEN.values()), safe
    assert calls("torch.load(f, map_location=dict(a=1))", "torch.load") == ["torch.load(f, map_location=dict(a=1))"]
