import base64
import io

import numpy as np
import pytest
from PIL import Image

from retclip_pipeline.images import BadImage, convert_one, dhash, normalise


def _fundus(size=(400, 300), mode="RGB") -> Image.Image:
    image = Image.new("RGB", size)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse([w // 2 - h // 2 + 10, 10, w // 2 + h // 2 - 10, h - 10], fill=(190, 80, 40))
    draw.ellipse([w // 2 + 40, h // 2 - 12, w // 2 + 64, h // 2 + 12], fill=(240, 220, 150))
    return image.convert(mode) if mode != "RGB" else image


def _bytes(image: Image.Image, fmt="PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def test_black_border_is_cropped_and_output_is_square():
    out = normalise(_bytes(_fundus()), 64)
    assert out.size == (64, 64) and out.mode == "RGB"
    pixels = np.asarray(out)
    # The fundus fills the frame: the centre row is lit almost edge to edge.
    assert (pixels[32].sum(axis=1) > 60).mean() > 0.9


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK", "I;16", "I"])
def test_any_mode_becomes_rgb(mode):
    image = _fundus()
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode == "I":
        image = image.convert("L").convert("I")
    else:
        image = image.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I") else "PNG"
    out = normalise(_bytes(image, fmt), 48)
    assert out.mode == "RGB" and out.size == (48, 48)
    assert np.asarray(out).max() > 100  # not blacked out by a bad scale


def test_reduced_jpeg_decode_matches_full_decode_closely():
    source = _bytes(_fundus((1600, 1200)).resize((1600, 1200)), "JPEG", quality=95)
    fast = np.asarray(normalise(source, 224), dtype=float)
    full_image = Image.open(io.BytesIO(source)).convert("RGB")
    slow_bytes = _bytes(full_image, "PNG")  # PNG: no reduced decode possible
    slow = np.asarray(normalise(slow_bytes, 224), dtype=float)
    assert np.abs(fast - slow).mean() < 3.0


def test_corrupt_and_truncated_images_raise_bad_image():
    with pytest.raises(BadImage):
        normalise(b"not an image", 32)
    jpeg = _bytes(_fundus(), "JPEG")
    with pytest.raises(BadImage):
        normalise(jpeg[: len(jpeg) // 3], 32)


def test_output_is_urlsafe_base64_jpeg_and_deterministic():
    source = _bytes(_fundus())
    b64, hash_value = convert_one(source, 32, 95, True)
    again = convert_one(source, 32, 95, True)
    assert (b64, hash_value) == again
    decoded = Image.open(io.BytesIO(base64.urlsafe_b64decode(b64)))
    assert decoded.format == "JPEG" and decoded.size == (32, 32)


def _texture(seed: int) -> Image.Image:
    noise = np.random.default_rng(seed).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((400, 300), Image.Resampling.BICUBIC)


def test_hash_separates_different_images_and_keeps_reencoded_copies_close():
    first, other = _texture(1), _texture(2)
    copy = Image.open(io.BytesIO(_bytes(first, "JPEG", quality=70))).convert("RGB")
    a, b, c = dhash(first), dhash(copy), dhash(other)
    assert bin(a ^ b).count("1") <= 12
    assert bin(a ^ c).count("1") > 12
