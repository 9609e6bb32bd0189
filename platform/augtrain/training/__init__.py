"""Training: the Ray runtime, the resource plan, the train loop and its checkpoints."""
