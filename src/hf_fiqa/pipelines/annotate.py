"""Draw pipeline results on a photo: a box per face, coloured and labelled by quality (for demos and reports)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def quality_colour(value: float, low: float, high: float) -> tuple[int, int, int]:
    """Red (worst) to green (best) across the range of qualities shown."""
    t = 0.5 if high <= low else float(np.clip((value - low) / (high - low), 0.0, 1.0))
    return int(round(255 * (1 - t))), int(round(200 * t)), 40


def draw_faces(image: Image.Image, record: dict[str, Any], line_width: int | None = None) -> Image.Image:
    """A copy of ``image`` with each face of a ``face-image-quality`` record boxed and labelled."""
    out = image.convert("RGB").copy()
    faces = record.get("faces") or []
    if not faces:
        return out
    draw = ImageDraw.Draw(out)
    qualities = [f["quality"] for f in faces]
    low, high = min(qualities), max(qualities)
    width = line_width or max(2, round(max(out.size) / 300))
    font = ImageFont.load_default(size=max(12, 8 * width))
    for face in faces:
        colour = quality_colour(face["quality"], low, high)
        x1, y1, x2, y2 = face["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        for x, y in face["landmarks"]:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour)
        label = f"#{face['face_index']} q={face['quality']:.3g}"
        left, top, right, bottom = draw.textbbox((x1, y1), label, font=font)
        lift = bottom - top + 2 * width
        draw.rectangle([x1, y1 - lift, x1 + right - left + 2 * width, y1], fill=colour)
        draw.text((x1 + width, y1 - lift + width - (top - y1)), label, fill=(255, 255, 255), font=font)
    return out
