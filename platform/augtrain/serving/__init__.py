"""Serving: batch prediction with Ray Data, and explaining prediction inputs."""
