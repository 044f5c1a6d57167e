"""Synthetic fundus-like images for the demo data: an orange disc with vessels, an optic
disc, and per class a visual cue (spots, pallor, haemorrhages...) a small model can learn.
Deterministic: the same random generator state gives the same pixels."""

from __future__ import annotations

import io
import math
import random

from PIL import Image, ImageDraw, ImageFilter


def _fundus_base(
    rng: random.Random, size: tuple[int, int], disc_right: bool, pale: float = 0.0
) -> tuple[Image.Image, tuple[int, int], int, tuple[int, int]]:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    cx, cy = width // 2 + rng.randint(-3, 3), height // 2 + rng.randint(-3, 3)
    radius = int(min(width, height) * 0.46)
    base = (rng.randint(170, 205), rng.randint(70, 95), rng.randint(25, 45))
    for step in range(radius, 0, -2):  # darker towards the rim, as in real photographs
        shade = 0.55 + 0.45 * (1 - step / radius) ** 0.5
        colour = tuple(int(c * shade + (255 - c) * pale * 0.5) for c in base)
        draw.ellipse([cx - step, cy - step, cx + step, cy + step], fill=colour)
    offset = int(radius * 0.45) * (1 if disc_right else -1)
    disc = (cx + offset, cy + rng.randint(-4, 4))
    return image, (cx, cy), radius, disc


def _vessels(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    disc: tuple[int, int],
    radius: int,
    width: int = 2,
    colour=(120, 20, 20),
) -> None:
    for angle in (0.6, 1.2, -0.6, -1.2, 2.5, -2.5):
        points = [disc]
        x, y = disc
        heading = angle + rng.uniform(-0.2, 0.2)
        for _ in range(6):
            heading += rng.uniform(-0.25, 0.25)
            x += math.cos(heading) * radius * 0.18
            y += math.sin(heading) * radius * 0.18
            points.append((int(x), int(y)))
        draw.line(points, fill=colour, width=width)


def _dots(draw, rng, centre, radius, count, colour, size) -> None:
    for _ in range(count):
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.8) * radius
        x, y = centre[0] + math.cos(angle) * dist, centre[1] + math.sin(angle) * dist
        draw.ellipse([x - size, y - size, x + size, y + size], fill=colour)


def fundus_image(label: str, rng: random.Random, size=(200, 150), disc_right=True) -> Image.Image:
    """One synthetic photograph of `label`; `disc_right` places the optic disc (eye side)."""
    if label == "Pterygium":  # an anterior-segment photograph, not a fundus
        image = Image.new("RGB", size, (rng.randint(215, 235), rng.randint(200, 215), 200))
        draw = ImageDraw.Draw(image)
        cx, cy, r = size[0] // 2, size[1] // 2, int(size[1] * 0.3)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(90, 60, 35))
        draw.ellipse([cx - r // 3, cy - r // 3, cx + r // 3, cy + r // 3], fill=(10, 10, 10))
        tip = cx - r // 2 + rng.randint(-5, 5)
        draw.polygon(
            [(0, cy - r), (0, cy + r), (tip, cy + rng.randint(-4, 4))], fill=(205, 110, 110)
        )
        return image.filter(ImageFilter.GaussianBlur(0.8))
    pale = {"Myopia": 0.35, "Retinitis Pigmentosa": 0.15}.get(label, 0.0)
    image, centre, radius, disc = _fundus_base(rng, size, disc_right, pale)
    draw = ImageDraw.Draw(image)
    disc_r = int(radius * 0.13)
    macula = (centre[0] - (disc[0] - centre[0]) // 3, centre[1])
    if label == "Myopia":  # tigroid stripes
        for x in range(centre[0] - radius, centre[0] + radius, 7):
            draw.line(
                [(x, centre[1] - radius), (x + 12, centre[1] + radius)], fill=(150, 70, 40), width=2
            )
    vessel_width = 1 if label == "Retinitis Pigmentosa" else 2
    _vessels(draw, rng, disc, radius, vessel_width)
    draw.ellipse([macula[0] - 9, macula[1] - 9, macula[0] + 9, macula[1] + 9], fill=(110, 40, 15))
    disc_colour = (235, 215, 140) if label != "Retinitis Pigmentosa" else (235, 230, 200)
    if label == "Disc Edema":
        disc_r = int(disc_r * 1.6)
    draw.ellipse(
        [disc[0] - disc_r, disc[1] - disc_r, disc[0] + disc_r, disc[1] + disc_r], fill=disc_colour
    )
    cup = {"Glaucoma": 0.8}.get(label, 0.35)
    cup_r = int(disc_r * cup)
    draw.ellipse(
        [disc[0] - cup_r, disc[1] - cup_r, disc[0] + cup_r, disc[1] + cup_r], fill=(250, 245, 215)
    )
    if label == "Myopia":
        side = 1 if disc[0] < centre[0] else -1
        draw.chord(
            [
                disc[0] - disc_r * 2,
                disc[1] - disc_r * 2,
                disc[0] + disc_r * 2,
                disc[1] + disc_r * 2,
            ],
            90 + 90 * side - 60,
            90 + 90 * side + 60,
            fill=(240, 225, 190),
        )
    elif label == "Diabetic Retinopathy":
        _dots(draw, rng, centre, radius, rng.randint(14, 22), (140, 0, 0), 2)
        _dots(draw, rng, centre, radius, rng.randint(5, 9), (250, 240, 110), 2)
    elif label.startswith("Central Serous"):
        r = rng.randint(14, 18)
        draw.ellipse(
            [macula[0] - r, macula[1] - r, macula[0] + r, macula[1] + r],
            fill=(230, 150, 90),
            outline=(120, 50, 20),
            width=2,
        )
    elif label == "Macular Scar":
        r = rng.randint(11, 15)
        draw.ellipse(
            [macula[0] - r - 3, macula[1] - r - 3, macula[0] + r + 3, macula[1] + r + 3],
            fill=(235, 225, 200),
        )
        draw.ellipse(
            [macula[0] - r, macula[1] - r, macula[0] + r, macula[1] + r], fill=(45, 30, 20)
        )
    elif label == "Retinal Detachment":
        top = centre[1] - radius
        for k in range(5):
            y = top + 10 + k * 9
            draw.line(
                [
                    (centre[0] - radius + 15, y + rng.randint(-3, 3)),
                    (centre[0], y + 6),
                    (centre[0] + radius - 15, y + rng.randint(-3, 3)),
                ],
                fill=(175, 175, 170),
                width=6,
            )
    elif label == "Retinitis Pigmentosa":
        for _ in range(rng.randint(18, 26)):
            angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.55, 0.9) * radius
            x, y = centre[0] + math.cos(angle) * dist, centre[1] + math.sin(angle) * dist
            draw.line(
                [(x, y), (x + rng.randint(-5, 5), y + rng.randint(-5, 5))],
                fill=(15, 10, 10),
                width=2,
            )
    blur = 1.6 if label == "Disc Edema" else 0.6
    image = image.filter(ImageFilter.GaussianBlur(blur))
    mask = Image.new("L", size)  # a real camera sees nothing outside the round fundus
    ImageDraw.Draw(mask).ellipse(
        [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius], fill=255
    )
    return Image.composite(image, Image.new("RGB", size), mask)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
