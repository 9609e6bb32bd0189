"""Recipes: run, k-fold, tune (and its trials), peers over the shared run-dir helpers; only the CLI imports them."""
