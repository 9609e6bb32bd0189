"""Datasets: storage (folders and URIs), untrusted files and sources, collect, the dataset format, normalization, the Ray Data stream."""
