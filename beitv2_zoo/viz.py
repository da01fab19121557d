"""Pictures drawn with Pillow alone: predictions, attention maps and training curves.

Every function returns a ``PIL.Image`` in RGB; callers save it (``image.save('out.png')``).
"""

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_BACKGROUND = (255, 255, 255)
_INK = (33, 37, 41)
_MUTED = (120, 124, 130)
_BAR = (52, 101, 164)
# Anchors of a perceptually ordered dark-blue → green → yellow colour map (viridis-like).
_COLORMAP = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64)
_SERIES = [(52, 101, 164), (204, 80, 62), (74, 152, 80), (142, 99, 173), (230, 159, 0)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _fit_height(image: Image.Image, height: int) -> Image.Image:
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.BICUBIC)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` (any shape ``S``) to RGB ``uint8`` of shape ``S + (3,)``."""
    scaled = np.clip(values, 0.0, 1.0) * (len(_COLORMAP) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(_COLORMAP) - 2)
    frac = (scaled - low)[..., None]
    return (_COLORMAP[low] * (1 - frac) + _COLORMAP[low + 1] * frac).round().astype(np.uint8)


def predictions_figure(image: Image.Image, topk: Sequence[tuple[int, str, float]], title: str = "") -> Image.Image:
    """The image beside a horizontal bar chart of its top-k classes.

    Args:
        image: the input photo (any size; shown 320 px high).
        topk: ``(label, class name, probability)`` rows, best first.
        title: a line above the chart (e.g. the model name).
    """
    photo = _fit_height(image.convert("RGB"), 320)
    row_height, chart_width, margin = 44, 520, 16
    height = max(photo.height, 40 + row_height * len(topk)) + 2 * margin
    canvas = Image.new("RGB", (photo.width + chart_width + 3 * margin, height), _BACKGROUND)
    canvas.paste(photo, (margin, margin))
    draw = ImageDraw.Draw(canvas)
    left = photo.width + 2 * margin
    draw.text((left, margin), title or "top predictions", fill=_INK, font=_font(16))
    bar_space = chart_width - 70
    for row, (label, name, score) in enumerate(topk):
        top = margin + 32 + row * row_height
        shown = name if len(name) <= 60 else name[:57] + "…"
        draw.text((left, top), f"{shown}  [{label}]", fill=_INK, font=_font(13))
        bar_end = left + max(1, round(bar_space * score))
        draw.rectangle((left, top + 18, bar_end, top + 34), fill=_BAR)
        draw.text((bar_end + 6, top + 18), f"{score:.1%}", fill=_MUTED, font=_font(13))
    return canvas


def attention_figure(image: Image.Image, cls_attention: np.ndarray, title: str = "") -> Image.Image:
    """The model's input crop beside the CLS token's attention over the patches, overlaid.

    Args:
        image: the crop the model saw, ``S × S`` RGB.
        cls_attention: attention of the CLS query over the patches, ``[h, w]`` (head-averaged).
        title: a caption above the pictures.
    """
    size = 320
    crop = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    weights = np.asarray(cls_attention, dtype=np.float64)
    span = weights.max() - weights.min()
    normalised = (weights - weights.min()) / span if span > 0 else np.zeros_like(weights)
    heat = Image.fromarray(colormap(normalised)).resize((size, size), Image.Resampling.NEAREST)
    overlay = Image.blend(crop, heat, 0.55)
    margin, caption = 16, 28
    canvas = Image.new("RGB", (3 * size + 4 * margin, size + 2 * margin + caption), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin), title or "CLS attention", fill=_INK, font=_font(16))
    for index, (picture, label) in enumerate(((crop, "input"), (heat, "attention"), (overlay, "overlay"))):
        x = margin + index * (size + margin)
        canvas.paste(picture, (x, margin + caption))
        draw.text((x + 4, margin + caption + 4), label, fill=(255, 255, 255), font=_font(13))
    return canvas


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def curves_figure(series: dict[str, Sequence[tuple[float, float]]], title: str = "", x_label: str = "step") -> Image.Image:
    """Line charts, one panel per series (e.g. ``loss``, ``lr``), sharing the x axis label.

    Args:
        series: ``{name: [(x, y), …]}``; each series gets its own panel and y scale.
        title: a caption above the panels.
        x_label: the x axis name.
    """
    names = [n for n, points in series.items() if points]
    if not names:
        raise ValueError("no data points to plot")
    panel_w, panel_h, margin, gutter = 560, 220, 16, 64
    canvas = Image.new("RGB", (panel_w + gutter + 2 * margin, 48 + len(names) * (panel_h + 56)), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin), title or "training curves", fill=_INK, font=_font(16))
    for index, name in enumerate(names):
        xs, ys = (np.asarray(v, dtype=np.float64) for v in zip(*series[name]))
        left, top = margin + gutter, 48 + index * (panel_h + 56) + 12
        right, bottom = left + panel_w, top + panel_h
        draw.rectangle((left, top, right, bottom), outline=_MUTED)
        draw.text((left, top - 19), name, fill=_INK, font=_font(13))
        x_ticks = _nice_ticks(xs.min(), xs.max())
        y_ticks = _nice_ticks(ys.min(), ys.max())
        x_lo, x_hi = min(x_ticks[0], xs.min()), max(x_ticks[-1], xs.max())
        y_lo, y_hi = min(y_ticks[0], ys.min()), max(y_ticks[-1], ys.max())

        def to_canvas(x: float, y: float) -> tuple[float, float]:
            fx = (x - x_lo) / (x_hi - x_lo or 1.0)
            fy = (y - y_lo) / (y_hi - y_lo or 1.0)
            return left + fx * panel_w, bottom - fy * panel_h

        for tick in y_ticks:
            _, y = to_canvas(x_lo, tick)
            draw.line((left, y, right, y), fill=(230, 232, 235))
            draw.text((margin, y - 7), f"{tick:.3g}", fill=_MUTED, font=_font(11))
        for tick in x_ticks:
            x, _ = to_canvas(tick, y_lo)
            draw.text((x - 10, bottom + 4), f"{tick:.4g}", fill=_MUTED, font=_font(11))
        points = [to_canvas(x, y) for x, y in zip(xs, ys)]
        colour = _SERIES[index % len(_SERIES)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points if len(points) <= 60 else points[-1:]:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((right - 40, bottom + 20), x_label, fill=_MUTED, font=_font(11))
    return canvas
