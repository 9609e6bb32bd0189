"""augtrain: collected data -> augmented stream -> Ray Train -> evaluated, exported model."""

import os

# albumentations asks PyPI for a newer release on every import, in every Ray worker process that
# augments: up to 2 s each on a node without internet, and a warning against the version pinned here
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
