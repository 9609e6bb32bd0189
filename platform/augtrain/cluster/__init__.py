"""Ray cluster job submission (the Jobs API)."""
