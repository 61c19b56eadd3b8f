"""The batched LeakyReLU MLP: forward pass, loss and hand-written gradients (docs/design.md
section 2). Pure tensor functions; every tensor carries a leading batch axis B, one problem per
row, and columns are samples.

Biases: a layer whose weight has one column more than its input has rows, W_k = [A_k | b_k]
(d_k x (d_{k-1} + 1)), computes A_k h + b_k = W_k [h; 1], nn.Linear's affine map. Every function
here and in symmetry.py / teleport.py reads the bias from that shape, layer by layer, so biased
and bias-free layers mix freely.
"""

from __future__ import annotations

import torch

__all__ = [
    "DEFAULT_SLOPE",
    "affine",
    "has_bias",
    "leaky_relu",
    "leaky_relu_inv",
    "mlp_forward",
    "mlp_loss",
    "mlp_loss_and_grad",
    "path_norm_sq",
    "with_ones",
]

DEFAULT_SLOPE = 0.1


def leaky_relu(x: torch.Tensor, slope: float = DEFAULT_SLOPE) -> torch.Tensor:
    return torch.where(x >= 0, x, slope * x)


def leaky_relu_inv(x: torch.Tensor, slope: float = DEFAULT_SLOPE) -> torch.Tensor:
    return torch.where(x >= 0, x, x / slope)


def has_bias(W: torch.Tensor, h: torch.Tensor) -> bool:
    """Whether W (B, d_k, c) holds a bias column for input h (B, d_{k-1}, n): c = d_{k-1} + 1."""
    return W.shape[-1] == h.shape[-2] + 1


def affine(W: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """W [h; 1] when W has a bias column, else W h: (B, d_k, n)."""
    if has_bias(W, h):
        return torch.baddbmm(W[..., -1:], W[..., :-1], h)
    return torch.bmm(W, h)


def with_ones(h: torch.Tensor) -> torch.Tensor:
    """[h; 1]: h (B, d, n) with a row of ones appended, (B, d + 1, n)."""
    return torch.cat([h, h.new_ones(h.shape[0], 1, h.shape[2])], dim=1)


def mlp_forward(
    weights: list[torch.Tensor], X: torch.Tensor, slope: float = DEFAULT_SLOPE
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Forward pass. Returns (f (B, d_L, n), pre-activations Z_1..Z_{L-1}, inputs h_0..h_{L-1})."""
    _check_shapes(weights, X)
    h = X
    hs, zs = [X], []
    for W in weights[:-1]:
        z = affine(W, h)
        h = leaky_relu(z, slope)
        zs.append(z)
        hs.append(h)
    return affine(weights[-1], h), zs, hs


def mlp_loss(
    weights: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, slope: float = DEFAULT_SLOPE
) -> torch.Tensor:
    """Per-problem loss 1/2 ||Y - f(X)||_F^2, shape (B,)."""
    f, _, _ = mlp_forward(weights, X, slope)
    if Y.shape != f.shape:
        raise ValueError(f"Y has shape {tuple(Y.shape)}, the network outputs {tuple(f.shape)}")
    return 0.5 * (f - Y).pow(2).sum(dim=(1, 2))


def mlp_loss_and_grad(
    weights: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor, slope: float = DEFAULT_SLOPE
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-problem loss (B,) and its gradient w.r.t. every weight, by hand-written backprop.

    The loss keeps the autograd graph of ``weights`` (meta-training differentiates it); the
    gradients are computed from detached tensors and carry no graph: learned optimizers read
    them as first-order inputs (docs/design.md section 6), and this is cheaper than autograd.grad.
    """
    f, zs, hs = mlp_forward(weights, X, slope)
    if Y.shape != f.shape:
        raise ValueError(f"Y has shape {tuple(Y.shape)}, the network outputs {tuple(f.shape)}")
    r = f - Y
    loss = 0.5 * r.pow(2).sum(dim=(1, 2))
    with torch.no_grad():
        delta = r.detach()
        grads = [None] * len(weights)
        for k in range(len(weights) - 1, -1, -1):
            h = hs[k].detach()
            grads[k] = torch.bmm(delta, h.transpose(1, 2))
            if has_bias(weights[k], h):
                grads[k] = torch.cat([grads[k], delta.sum(dim=2, keepdim=True)], dim=2)
            if k > 0:
                back = torch.bmm(weights[k].detach()[..., :h.shape[1]].transpose(1, 2), delta)
                delta = torch.where(zs[k - 1].detach() >= 0, back, slope * back)
    return loss, grads


def path_norm_sq(weights: list[torch.Tensor], d_0: int) -> torch.Tensor:
    """The squared l2 path norm of each problem's network, (B,): the sum over every path from
    an input (or a bias) to an output of the product of its weights squared, W_L^2 (...
    W_1^2 1), a bias column starting paths of its own. Unchanged by the diag group (a positive
    rescaling of hidden units): a measure of the function's scale that no rescaling teleport
    moves. ``d_0``: the input width."""
    v = weights[0].new_ones(weights[0].shape[0], d_0, 1)
    for W in weights:
        v = affine(W.pow(2), v)
    return v.sum(dim=(1, 2))


def _check_shapes(weights: list[torch.Tensor], X: torch.Tensor) -> None:
    if X.dim() != 3:
        raise ValueError(f"X must be (B, d_0, n), got shape {tuple(X.shape)}")
    if len(weights) < 2:
        raise ValueError(f"need at least 2 weight matrices, got {len(weights)}")
    rows = X.shape[1]
    for k, W in enumerate(weights, start=1):
        if W.dim() != 3 or W.shape[0] != X.shape[0] or W.shape[2] not in (rows, rows + 1):
            raise ValueError(
                f"W_{k} has shape {tuple(W.shape)}; expected (B={X.shape[0]}, d_{k}, {rows}), "
                f"or (B, d_{k}, {rows + 1}) with a bias column"
            )
        rows = W.shape[1]

