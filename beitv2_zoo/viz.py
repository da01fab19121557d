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


def token_colors(ids: np.ndarray) -> np.ndarray:
    """A stable colour per code id: RGB ``uint8`` of shape ``ids.shape + (3,)``.

    The id is mixed by an integer hash (the same on every run and machine) into a hue, a
    saturation in 0.55..0.95 and a value in 0.70..0.95, so neighbouring ids look unrelated.
    """
    mixed = (np.asarray(ids, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B1) % np.uint64(2**32)
    mixed ^= mixed >> np.uint64(15)
    mixed = mixed * np.uint64(0x85EBCA6B) % np.uint64(2**32)
    hue = (mixed & np.uint64(0xFFFF)).astype(np.float64) / 65536.0
    saturation = 0.55 + 0.40 * ((mixed >> np.uint64(16)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    value = 0.70 + 0.25 * ((mixed >> np.uint64(24)) & np.uint64(0xFF)).astype(np.float64) / 255.0
    sector = np.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    p, q, t = value * (1 - saturation), value * (1 - frac * saturation), value * (1 - (1 - frac) * saturation)
    choices = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)]
    rgb = np.zeros(np.shape(ids) + (3,), dtype=np.float64)
    for index, (r, g, b) in enumerate(choices):
        where = sector % 6 == index
        rgb[where] = np.stack([r, g, b], axis=-1)[where]
    return (rgb * 255).round().astype(np.uint8)


def token_map_figure(image: Image.Image, ids: np.ndarray, title: str = "") -> Image.Image:
    """The tokenizer's input crop, the crop under its token map, and the map with every code id.

    Args:
        image: the crop the tokenizer saw, ``S × S`` RGB.
        ids: code ids ``[h, w]``; each code gets the colour :func:`token_colors` gives it.
        title: a caption above the pictures.
    """
    ids = np.asarray(ids)
    rows, cols = ids.shape
    cell = max(24, 448 // max(rows, cols))
    width, height = cols * cell, rows * cell
    crop = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    colours = token_colors(ids)
    tokens = Image.fromarray(colours).resize((width, height), Image.Resampling.NEAREST)
    overlay = Image.blend(crop, tokens, 0.5)
    labelled = tokens.copy()
    draw_map = ImageDraw.Draw(labelled)
    font = _font(max(9, cell // 3))
    for r in range(rows):
        for c in range(cols):
            red, green, blue = (int(v) for v in colours[r, c])
            ink = (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)
            box = draw_map.textbbox((0, 0), str(ids[r, c]), font=font)
            x = c * cell + (cell - (box[2] - box[0])) / 2
            y = r * cell + (cell - (box[3] - box[1])) / 2 - box[1]
            draw_map.text((x, y), str(ids[r, c]), fill=ink, font=font)
    for picture in (overlay, labelled):
        grid = ImageDraw.Draw(picture)
        for k in range(1, rows):
            grid.line((0, k * cell, width, k * cell), fill=(255, 255, 255), width=1)
        for k in range(1, cols):
            grid.line((k * cell, 0, k * cell, height), fill=(255, 255, 255), width=1)
    margin, caption = 16, 28
    canvas = Image.new("RGB", (3 * width + 4 * margin, height + 2 * margin + caption), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, margin), title or "visual tokens", fill=_INK, font=_font(16))
    for index, (picture, label) in enumerate(((crop, "input"), (overlay, "tokens over input"), (labelled, "code ids"))):
        x = margin + index * (width + margin)
        canvas.paste(picture, (x, margin + caption))
        if index < 2:
            draw.text((x + 4, margin + caption + 4), label, fill=(255, 255, 255), font=_font(13))
    return canvas


def segmentation_overlay(image: "Image.Image | np.ndarray", pred_sem_seg: np.ndarray,
                         palette: Sequence[Sequence[int]], class_names: Sequence[str], alpha: float = 0.5,
                         max_legend: int = 20) -> Image.Image:
    """The image with its label map blended over it, beside a legend of the classes present.

    Args:
        image: the photo, a PIL image or an RGB ``uint8`` ``[H, W, 3]`` array.
        pred_sem_seg: integer labels ``[H, W]`` (the image's size), each below ``len(palette)``.
        palette: an RGB colour per class.
        class_names: a name per class.
        alpha: weight of the label colours (0: the photo only, 1: the colours only).
        max_legend: most legend rows; the rest are summed up in one last line.

    Returns:
        RGB ``PIL.Image``: the overlay at the image's size, the legend (a colour swatch, the class name
        and its share of the pixels, largest share first) on a white panel to its right.

    Raises:
        ValueError: the label map does not match the image, or holds a label without a colour or a name.
    """
    photo = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)).convert("RGB")
    labels = np.asarray(pred_sem_seg)
    if labels.shape != (photo.height, photo.width):
        raise ValueError(f"the label map is {list(labels.shape)} and the image {photo.height}x{photo.width}; "
                         "they must be the same size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if labels.size and (labels.min() < 0 or labels.max() >= min(len(colours), len(class_names))):
        raise ValueError(f"labels run from {labels.min()} to {labels.max()}, but there are {len(colours)} colours "
                         f"and {len(class_names)} class names")
    overlay = Image.blend(photo, Image.fromarray(colours[labels]), alpha)

    counts = np.bincount(labels.ravel(), minlength=len(colours))
    present = sorted(np.flatnonzero(counts).tolist(), key=lambda k: (-counts[k], k))  # largest share first, then label
    rows = [(colours[k], f"{str(class_names[k]).strip()}  {_share(counts[k] / labels.size)}")
            for k in present[:max_legend]]
    if len(present) > max_legend:
        rest = counts[present[max_legend:]].sum() / labels.size
        extra = len(present) - max_legend
        rows.append((None, f"… {extra} more class{'es' if extra > 1 else ''}  {_share(rest)}"))
    unit = max(14, min(48, photo.height // 30))  # rows readable at any image size
    font, margin = _font(unit), unit
    draw = ImageDraw.Draw(overlay)
    text_width = int(max((draw.textbbox((0, 0), text, font=font)[2] for _, text in rows), default=0))
    legend_width = 2 * margin + unit + unit // 2 + text_width
    height = max(photo.height, 2 * margin + len(rows) * (unit + unit // 2))
    canvas = Image.new("RGB", (photo.width + legend_width, height), _BACKGROUND)
    canvas.paste(overlay, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, (colour, text) in enumerate(rows):
        left, top = photo.width + margin, margin + row * (unit + unit // 2)
        if colour is not None:
            draw.rectangle((left, top, left + unit, top + unit), fill=tuple(int(c) for c in colour), outline=_MUTED)
        draw.text((left + unit + unit // 2, top), text, fill=_INK if colour is not None else _MUTED, font=font)
    return canvas


def _share(fraction: float) -> str:
    return f"{fraction:.1%}" if fraction >= 0.001 or fraction == 0 else "<0.1%"
