"""Image normalisation for conversion: any mode to RGB, black border cropped, square resize,
JPEG encoding, and a perceptual hash for near-duplicate detection. Pure functions that run in
worker processes."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageOps

# A pixel at or below this grey level counts as border; fundus borders are near black but
# carry JPEG noise.
BORDER_LEVEL = 20
# Below this share of the image the "fundus" is more likely a dark photo: leave it uncropped.
MIN_CROP_AREA = 0.1


class BadImage(Exception):
    """The source bytes are not a readable image."""


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: 16-bit and float greys are scaled, alpha is laid on black."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        image = image.point(lambda v: v * (1 / 256)).convert("L")
    elif image.mode in ("I", "F"):
        lo, hi = image.getextrema()
        scale = 255 / (hi - lo) if hi > lo else 0
        image = image.point(lambda v: (v - lo) * scale).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def fundus_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of the non-black fundus, or None to keep the whole image."""
    mask = image.convert("L").point(lambda v: 255 if v > BORDER_LEVEL else 0)
    box = mask.getbbox()
    if box is None:
        return None
    area = (box[2] - box[0]) * (box[3] - box[1])
    if area < MIN_CROP_AREA * image.width * image.height:
        return None
    return box


def _open(data: bytes, size: int, draft: bool) -> tuple[Image.Image, bool]:
    """Decode; with `draft`, a JPEG decodes at 1/2, 1/4 or 1/8 scale while it stays at least
    `size` a side. Returns the image and whether it was decoded at reduced scale."""
    image = Image.open(io.BytesIO(data))
    full_size = image.size
    if draft and image.format == "JPEG":
        image.draft("RGB", (size, size))
    image.load()
    return image, image.size != full_size


def normalise(data: bytes, size: int, crop_border: bool = True) -> Image.Image:
    """Source image bytes -> a size x size RGB image of the fundus."""
    try:
        image, drafted = _open(data, size, draft=True)
        image = ImageOps.exif_transpose(to_rgb(image))
        box = fundus_box(image) if crop_border else None
        if drafted and box and min(box[2] - box[0], box[3] - box[1]) < size:
            # The reduced decode would leave the cropped fundus under target size: decode in full.
            image = ImageOps.exif_transpose(to_rgb(_open(data, size, draft=False)[0]))
            box = fundus_box(image) if crop_border else None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImage(str(exc) or type(exc).__name__) from None
    if box:
        image = image.crop(box)
    side = max(image.size)
    if image.width != image.height:
        # Pad to a square on black so the round fundus keeps its shape.
        square = Image.new("RGB", (side, side))
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = square
    if side != size:
        image = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return image


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def to_b64(jpeg: bytes) -> str:
    # Reference readers decode with base64.urlsafe_b64decode.
    return base64.urlsafe_b64encode(jpeg).decode("ascii")


HASH_SIDE = 16  # a 256-bit hash: 8x8 cannot tell apart fundus photographs, all round and red


def dhash(image: Image.Image) -> int:
    """Difference hash (HASH_SIDE**2 bits): robust to resizing, re-encoding and small colour
    changes, so re-encoded or lightly altered copies of one photograph land close together."""
    grey = image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BILINEAR)
    pixels = grey.tobytes()
    bits = 0
    for row in range(HASH_SIDE):
        base = row * (HASH_SIDE + 1)
        for col in range(HASH_SIDE):
            bits = (bits << 1) | (pixels[base + col] > pixels[base + col + 1])
    return bits


def convert_one(data: bytes, size: int, quality: int, crop_border: bool) -> tuple[str, int]:
    """Bytes of one source image -> (base64 JPEG, perceptual hash)."""
    image = normalise(data, size, crop_border)
    return to_b64(encode_jpeg(image, quality)), dhash(image)
