"""The job spec: YAML read with bounds, validated into frozen sections before Ray starts. Imports neither torch nor albumentations."""
