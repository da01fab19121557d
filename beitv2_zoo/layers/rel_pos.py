"""Relative position bias: index tables, the shared bias module, and table resizing.

A BEiT bias table has one row per relative offset between two patches of a
``Wh x Ww`` grid, ``(2Wh - 1) * (2Ww - 1)`` rows, plus three rows for the CLS token
(CLS→patch, patch→CLS, CLS→CLS). Columns are attention heads.
"""

import functools
import math

import torch
from torch import nn


def num_relative_distances(window_size: tuple[int, int]) -> int:
    """Rows of a bias table for ``window_size``: ``(2Wh-1)(2Ww-1) + 3``."""
    return (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + 3


def relative_position_index(window_size: tuple[int, int]) -> torch.Tensor:
    """Row of the bias table used by every (query, key) pair, CLS token included.

    Computed once per grid size (every block of a model asks for the same table); each
    caller gets its own copy.

    Always built on the CPU, even inside ``with torch.device("meta")``: meta ``arange``
    has no kernel of its own and would pull in torch's decomposition machinery (sympy,
    dynamo: about a second of imports).

    Returns:
        ``[N + 1, N + 1]`` int64 with ``N = Wh * Ww``; token 0 is the CLS token.
    """
    return _relative_position_index(tuple(window_size)).clone()


@functools.lru_cache(maxsize=8)
def _relative_position_index(window_size: tuple[int, int]) -> torch.Tensor:
    wh, ww = window_size
    cpu = torch.device("cpu")
    rows, cols = torch.meshgrid(torch.arange(wh, device=cpu), torch.arange(ww, device=cpu), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # [2, N]
    delta = coords[:, :, None] - coords[:, None, :]  # [2, N, N]
    patch_index = (delta[0] + wh - 1) * (2 * ww - 1) + (delta[1] + ww - 1)

    total = num_relative_distances(window_size)
    index = torch.empty(wh * ww + 1, wh * ww + 1, dtype=torch.long, device=cpu)
    index[1:, 1:] = patch_index
    index[0, :] = total - 3  # CLS query → patch keys
    index[:, 0] = total - 2  # patch queries → CLS key
    index[0, 0] = total - 1  # CLS → CLS
    return index


def gather_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Expand a bias table ``[R, H]`` with an index ``[L, L]`` into an attention bias ``[H, L, L]``."""
    length = index.shape[0]
    return table[index.view(-1)].view(length, length, -1).permute(2, 0, 1).contiguous()


class RelativePositionBias(nn.Module):
    """One bias table shared by all blocks (BEiT pretraining uses this).

    Args:
        window_size: patch grid ``(Wh, Ww)``.
        num_heads: attention heads ``H``.
    """

    def __init__(self, window_size: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.window_size = tuple(window_size)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(num_relative_distances(self.window_size), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(self.window_size), persistent=False)

    def forward(self, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Returns the bias ``[H, N + 1, N + 1]``; for another patch ``grid`` (``N = gh * gw``), the
        table resized on the fly (:func:`bias_for_grid`)."""
        if grid is None or tuple(grid) == self.window_size:
            return gather_bias(self.relative_position_bias_table, self.relative_position_index)
        return bias_for_grid(self.relative_position_bias_table, grid)


def bias_for_grid(table: torch.Tensor, grid: tuple[int, int], method: str = "bilinear") -> torch.Tensor:
    """The attention bias ``[H, N + 1, N + 1]`` of a patch ``grid`` (``N = gh * gw``) from a square-window
    table ``[R, H]`` built for another grid: the table is resized as the checkpoint loader resizes it
    (:func:`resize_rel_pos_bias_table` with ``method``, differentiable), then gathered with the grid's
    own index."""
    size = (int(grid[0]), int(grid[1]))
    resized = resize_rel_pos_bias_table(table, size, method=method)
    return gather_bias(resized, relative_position_index(size).to(table.device))


def _geometric_offsets(src: int, dst: int) -> torch.Tensor:
    """Source offsets placed on a geometric progression that spans the destination range.

    The official BEiT fine-tuning code resizes tables this way: the ``src`` source
    offsets ``-k..k`` are spread as ``0, ±1, ±(1+q), ±(1+q+q²), …`` where ``q`` is found
    by bisection so that the outermost offset reaches ``dst // 2``.
    """
    half = src // 2
    low, high = 1.01, 1.5
    while high - low > 1e-6:
        q = (low + high) / 2.0
        reach = (1.0 - q**half) / (1.0 - q)
        if reach > dst // 2:
            high = q
        else:
            low = q
    positive, step = [], 1.0
    for i in range(half):
        positive.append(step)
        step += q ** (i + 1)
    return torch.tensor([-p for p in reversed(positive)] + [0.0] + positive, dtype=torch.float64)


def _linear_weights(points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Matrix ``[T, S]`` that linearly interpolates values at sorted ``points`` onto ``targets``.

    Targets outside the range take the nearest end value.
    """
    right = torch.bucketize(targets, points).clamp(1, len(points) - 1)
    left = right - 1
    span = points[right] - points[left]
    frac = ((targets - points[left]) / span).clamp(0.0, 1.0)
    weights = torch.zeros(len(targets), len(points), dtype=torch.float64)
    rows = torch.arange(len(targets))
    weights[rows, left] += 1.0 - frac
    weights[rows, right] += frac
    return weights


def _bspline_basis(knots: torch.Tensor, points: torch.Tensor, degree: int) -> torch.Tensor:
    """B-spline basis values ``[P, K - degree - 1]`` of a clamped knot vector ``knots [K]`` at ``points [P]``
    (Cox–de Boor recursion, float64). A point on the last knot belongs to the last non-empty interval."""
    count = len(knots) - 1
    span = (torch.searchsorted(knots, points, right=True) - 1).clamp(degree, count - degree - 1)
    basis = torch.zeros(len(points), count, dtype=torch.float64)
    basis[torch.arange(len(points)), span] = 1.0
    x = points[:, None]
    for d in range(1, degree + 1):
        left, right = knots[: count - d], knots[d:count]  # t_i, t_{i+d}
        left1, right1 = knots[1 : count - d + 1], knots[d + 1 : count + 1]  # t_{i+1}, t_{i+d+1}
        up = torch.where(right > left, (x - left) / (right - left).clamp_min(1e-300), torch.zeros(()))
        down = torch.where(right1 > left1, (right1 - x) / (right1 - left1).clamp_min(1e-300), torch.zeros(()))
        basis = up * basis[:, : count - d] + down * basis[:, 1 : count - d + 1]
    return basis


def _cubic_weights(points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Matrix ``[T, S]`` of the interpolating not-a-knot cubic spline through sorted ``points [S]``
    evaluated at ``targets [T]`` (float64): ``W @ values`` is the spline at the targets.

    This is the spline FITPACK fits with ``s=0`` (``interp2d(kind='cubic')``, ``RectBivariateSpline``):
    knots at the data points except the second and the second-to-last. Targets outside the points are
    clamped to the end points, as FITPACK's evaluator does. Fewer than 4 points: the interpolating
    polynomial of degree ``S - 1`` (the spline's limit; FITPACK refuses such grids).
    """
    num = len(points)
    targets = targets.clamp(points[0].item(), points[-1].item())
    if num < 4:
        vander_src = points[:, None] ** torch.arange(num, dtype=torch.float64)
        vander_dst = targets[:, None] ** torch.arange(num, dtype=torch.float64)
        return torch.linalg.solve(vander_src.T, vander_dst.T).T
    knots = torch.cat([points[:1].repeat(4), points[2:-2], points[-1:].repeat(4)])  # [S + 4]
    collocation = _bspline_basis(knots, points, 3)  # [S, S]
    evaluation = _bspline_basis(knots, targets, 3)  # [T, S]
    return torch.linalg.solve(collocation.T, evaluation.T).T  # evaluation @ collocation^-1


@functools.lru_cache(maxsize=16)
def _resize_weights(src: int, dst: int, method: str) -> torch.Tensor:
    """Interpolation matrix ``[dst, src]`` (float64, CPU) from the geometric source offsets of a table side
    ``src`` to the integer offsets ``-(dst // 2) .. dst // 2``; callers must not modify it."""
    points = _geometric_offsets(src, dst)
    targets = torch.arange(-(dst // 2), dst // 2 + 1, dtype=torch.float64)
    if method == "cubic":
        return _cubic_weights(points, targets)
    return _linear_weights(points, targets)


RESIZE_METHODS = ("bilinear", "cubic")


def resize_rel_pos_bias_table(
    table: torch.Tensor, new_window_size: tuple[int, int], method: str = "bilinear"
) -> torch.Tensor:
    """Resize a square-window bias table ``[R, H]`` to another window size.

    The patch-offset part is interpolated per head on the official geometric grid of source offsets
    (:func:`_geometric_offsets`), evaluated at the integer offsets of the new window; the three CLS
    rows are kept as they are. Both methods are separable, ``W_rows @ z @ W_cols.T`` per head, and
    differentiable.

    Args:
        table: ``[(2S-1)² + 3, H]``.
        new_window_size: ``(Wh', Ww')``; need not be square.
        method: ``"bilinear"`` (timm's default; linear per axis, ends held) or ``"cubic"`` (the official
            BEiT fine-tuning and segmentation loaders: ``scipy.interpolate.interp2d(kind='cubic')``,
            a not-a-knot cubic spline per axis, reproduced without SciPy). As the official code does,
            ``"cubic"`` reads the table as float32, interpolates in float64 and rounds the result to
            float32 before casting it to the dtype of ``table``.

    Returns:
        ``[(2Wh'-1)(2Ww'-1) + 3, H]`` in the dtype of ``table`` (``table`` itself when the size is unchanged).
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown relative position resize method {method!r}; use one of {RESIZE_METHODS}")
    num_rows, num_heads = table.shape
    side = math.isqrt(num_rows - 3)
    if side * side != num_rows - 3:
        raise ValueError(f"relative position table with {num_rows} rows is not a square window plus 3 CLS rows")
    dst_h, dst_w = 2 * new_window_size[0] - 1, 2 * new_window_size[1] - 1
    if (side, side) == (dst_h, dst_w):
        return table
    if method == "cubic":
        source = table[:-3].float().double()
        w_rows = _resize_weights(side, dst_h, method).to(table.device)  # [Dh, S]
        w_cols = _resize_weights(side, dst_w, method).to(table.device)  # [Dw, S]
        grid = source.reshape(side, side, num_heads).permute(2, 0, 1)  # [H, S, S]
        resized = (w_rows @ grid @ w_cols.T).float()  # [H, Dh, Dw]
        patch_part = resized.permute(1, 2, 0).reshape(dst_h * dst_w, num_heads)
        return torch.cat([patch_part.to(table.dtype), table[-3:]], dim=0)
    grid = table[:-3].double().reshape(side, side, num_heads).permute(2, 0, 1)  # [H, S, S]
    src_points = _geometric_offsets(side, dst_h), _geometric_offsets(side, dst_w)
    targets = [torch.arange(-(d // 2), d // 2 + 1, dtype=torch.float64) for d in (dst_h, dst_w)]
    w_rows = _linear_weights(src_points[0], targets[0])  # [Dh, S]
    w_cols = _linear_weights(src_points[1], targets[1])  # [Dw, S]
    resized = w_rows @ grid @ w_cols.T  # [H, Dh, Dw]
    patch_part = resized.permute(1, 2, 0).reshape(dst_h * dst_w, num_heads)
    return torch.cat([patch_part.to(table.dtype), table[-3:]], dim=0)
