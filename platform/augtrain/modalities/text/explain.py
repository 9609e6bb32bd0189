"""Token attributions: Integrated Gradients at a text model's embedding layer (token ids have no gradient),
from the padding's embedding (zeros) as the baseline, summed over each token's embedding."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from augtrain.artifacts.explain import CHUNK


def token_attributions(model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int = 64) -> np.ndarray:
    """(N, max_length) attributions of each token to the `target` logit; padding gets 0."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    with torch.backends.cudnn.flags(enabled=False):  # cuDNN's RNN backward refuses eval mode
        attributions = LayerIntegratedGradients(model, model.embedding).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=steps, internal_batch_size=max(len(x), CHUNK),
        )
    return (attributions.sum(-1) * (x != 0)).detach().cpu().numpy()
