"""Trial: what one Tune trial runs in its own process: the base spec with its values, one Ray Train run.

Apart from augtrain.recipes.tune so that a trial's process imports only what training needs: the sweep's
reporting (matplotlib, scikit-learn's metrics, the bundle) cost every trial ~2 s of imports.
"""

from __future__ import annotations

from ray import tune

from augtrain.config.spec import Job, parse_job, set_dotted
from augtrain.datasets.storage import child
from augtrain.datasets.stream import CollectedData, configure_data
from augtrain.modalities import known
from augtrain.training.loop import fit
from augtrain.training.plan import Plan


def trial_job(base: Job, config: dict) -> Job:
    """The job one trial runs: the base spec with the trial's sampled values."""
    raw = base.model_dump(mode="json", exclude={"tune"})
    for path, value in config.items():
        set_dotted(raw, path, value)
    return parse_job(raw, "trial")


def run_trial(config: dict, base: Job, data: CollectedData, plan: Plan, trials: str, initial: list) -> None:
    """One trial: a run (in this process, or on Ray Train: see training.loop.in_process) from the base job's
    starting weights (`initial`: [their object ref] or []) whose per-epoch reports flow to Tune (for ASHA and
    the results).

    Its checkpoints live in the run dir under the trial's id, so a resumed sweep finds them.
    """
    configure_data(progress_bars=False)
    known(data.modality)
    job = trial_job(base, config)
    storage = child(trials, tune.get_context().get_trial_id(), "trial id")
    fit(job, data, plan, storage, trial=base.tune, initial=initial[0] if initial else None)
