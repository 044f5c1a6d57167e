"""Image normalisation for conversion: any mode to RGB, black border cropped, square resize,
JPEG encoding, and a perceptual hash for near-duplicate detection. Pure functions that run in
worker processes."""

from __future__ import annotations

import base64
import io
import re
import warnings

from PIL import Image, ImageOps

from ..errors import describe

# A pixel at or below this grey level counts as border; fundus borders are near black but
# carry JPEG noise.
BORDER_LEVEL = 20
# Below this share of the image the "fundus" is more likely a dark photo: leave it uncropped.
MIN_CROP_AREA = 0.1
# A longer side over this many times the shorter is no photograph of an eye: rejected.
MAX_ASPECT = 10
# Pillow's resize first box-averages by an integer factor that leaves the image at least this
# many times the target size, then resamples; the square padding follows the same steps.
REDUCING_GAP = 3.0
BICUBIC = Image.Resampling.BICUBIC


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


def _over_limit(pixels: str) -> BadImage:
    return BadImage(
        f"image of {pixels} pixels is over the {Image.MAX_IMAGE_PIXELS:,}-pixel limit "
        f"(Pillow's Image.MAX_IMAGE_PIXELS, against decompression bombs)"
    )


def check_size(width: int, height: int) -> None:
    """Reject, before decoding, an image whose size alone makes it unusable or dangerous: no
    pixels, an absurd aspect ratio, or more pixels than Pillow's decompression-bomb limit."""
    if width < 1 or height < 1:
        raise BadImage(f"image of {width}x{height} pixels has no pixels")
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT * short:
        raise BadImage(
            f"image of {width}x{height} pixels: its long side is {long / short:,.0f} times its "
            f"short side, over the {MAX_ASPECT}:1 limit"
        )
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        raise _over_limit(f"{width}x{height}")


def _open(data: bytes, size: int, draft: bool) -> tuple[Image.Image, bool]:
    """Decode; with `draft`, a JPEG decodes at 1/2, 1/4 or 1/8 scale while it stays at least
    `size` a side. Returns the image and whether it was decoded at reduced scale."""
    try:
        with warnings.catch_warnings():  # check_size rejects it, with its size named
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # over twice the limit: Pillow refuses it
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        raise _over_limit(f"{int(pixels[1]):,}" if pixels else "too many") from None
    except Image.UnidentifiedImageError:
        raise BadImage("not an image Pillow can read (unknown format or damaged header)") from None
    check_size(*image.size)
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
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(describe(exc)) from None
    if box:
        image = image.crop(box)
    return to_square(image, size)


def to_square(image: Image.Image, size: int) -> Image.Image:
    """A size x size image: `image` centred on a black square (so the round fundus keeps its
    shape) and resized. The pixels are those of padding first and resizing the square with
    Pillow's bicubic filter and reducing gap, but the padding comes after the reduction: a
    long thin image never becomes a huge square in memory."""
    width, height = image.size
    side = max(width, height)
    if width == height:
        return (
            image
            if side == size
            else image.resize((size, size), BICUBIC, reducing_gap=REDUCING_GAP)
        )
    factor = int(side / size / REDUCING_GAP) or 1
    left, top = (side - width) // 2, (side - height) // 2
    if factor == 1:  # the square is under 2 * REDUCING_GAP times the target side: small
        square = Image.new("RGB", (side, side))
        square.paste(image, (left, top))
        return square if side == size else square.resize((size, size), BICUBIC)
    # Box-average only the image and the black around it out to the square's grid of
    # factor x factor blocks (the blocks that straddle its edge average in some black), then
    # lay the result on the reduced square: the same blocks as reducing the whole square.
    x0, y0 = left - left % factor, top - top % factor
    x1 = min(side, -(-(left + width) // factor) * factor)
    y1 = min(side, -(-(top + height) // factor) * factor)
    strip = Image.new("RGB", (x1 - x0, y1 - y0))
    strip.paste(image, (left - x0, top - y0))
    reduced = Image.new("RGB", (-(-side // factor),) * 2)
    reduced.paste(strip.reduce(factor), (x0 // factor, y0 // factor))
    del strip
    return reduced.resize((size, size), BICUBIC, box=(0, 0, side / factor, side / factor))


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
