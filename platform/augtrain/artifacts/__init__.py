"""Artifacts of a finished run: the verified (and optionally signed) bundle, ONNX/TorchScript export, report.html, attribution maps, MLflow."""
