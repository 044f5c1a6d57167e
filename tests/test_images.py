import base64
import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from retclip_pipeline.data.images import (
    BadImage,
    check_size,
    convert_one,
    dhash,
    fundus_box,
    normalise,
    to_square,
)

from .conftest import PATIENCE_S, ROOT


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


def _pad_then_resize(image: Image.Image, size: int) -> Image.Image:
    """What normalise did before it bounded memory: the whole square first, then the resize."""
    side = max(image.size)
    square = Image.new("RGB", (side, side))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    if side == size:
        return square
    return square.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)


@pytest.mark.parametrize(
    "shape, size",
    [
        ((1300, 1200), 224),  # a fundus cropped by the frame: the usual case
        ((1200, 1301), 224),
        ((5999, 601), 33),  # long, with a reducing factor that does not divide the side
        ((601, 5999), 224),
        ((1601, 1599), 224),
        ((400, 300), 32),
        ((70, 7), 224),  # enlarged
        ((16, 8), 16),  # padded, not resized
        ((300, 300), 48),
    ],
)
def test_square_output_is_identical_to_padding_first(shape, size):
    noise = np.random.default_rng(sum(shape)).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    image = Image.fromarray(noise).resize(shape, Image.Resampling.BILINEAR)
    assert to_square(image, size).tobytes() == _pad_then_resize(image, size).tobytes()


def test_normalised_fundus_is_identical_to_padding_first():
    from PIL import ImageDraw

    clipped = Image.new("RGB", (1600, 1200))  # a fundus wider than the frame is high
    ImageDraw.Draw(clipped).ellipse([150, -50, 1450, 1250], fill=(190, 80, 40))
    source = _bytes(clipped)
    decoded = Image.open(io.BytesIO(source)).convert("RGB")
    cropped = decoded.crop(fundus_box(decoded))
    assert cropped.width != cropped.height  # the padded path, not the square one
    for size in (32, 224):
        assert normalise(source, size).tobytes() == _pad_then_resize(cropped, size).tobytes()


def _png_claiming(width: int, height: int) -> bytes:
    """A few-byte PNG whose header claims width x height (its pixel data is 1x1)."""
    data = _bytes(Image.new("1", (1, 1)))
    header = data[12:16] + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + header + struct.pack(">I", zlib.crc32(header)) + data[33:]


@pytest.mark.parametrize(
    "width, height, reason",
    [
        (30000, 30000, "image of 900,000,000 pixels is over the 89,478,485-pixel limit"),
        (10000, 10000, "image of 10000x10000 pixels is over the 89,478,485-pixel limit"),
    ],
)
def test_decompression_bomb_is_rejected_with_its_size(width, height, reason):
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, which the reasons quote
    with pytest.raises(BadImage, match=reason):
        normalise(_png_claiming(width, height), 32)


def test_zero_size_and_unreadable_images_have_a_plain_reason():
    with pytest.raises(BadImage, match="has no pixels"):
        check_size(0, 5)
    with pytest.raises(BadImage) as caught:
        normalise(b"garbage", 32)
    assert "0x" not in str(caught.value)  # no object address: reports stay reproducible


_MEASURE = """
import io, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an old square fails, not swaps
from PIL import Image
from retclip_pipeline.data.images import BadImage, normalise
width, height = int(sys.argv[1]), int(sys.argv[2])
out = io.BytesIO()
Image.new("L", (width, height)).save(out, format="PNG")
try:
    result = "x".join(map(str, normalise(out.getvalue(), 32).size))
except BadImage as exc:
    result = f"rejected: {exc}"
print(result)
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print(int(status) // 1024)
"""


@pytest.mark.parametrize(
    "width, height, result",
    [
        (100_000, 1, "rejected: image of 100000x1 pixels: its long side is 100,000 times"),
        (16_000, 2_000, "32x32"),  # padded first, a 16000 px square took over 1 GB
    ],
)
def test_long_thin_images_take_little_memory(width, height, result):
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(width), str(height)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=PATIENCE_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown, peak_mib = done.stdout.splitlines()
    assert shown.startswith(result)
    assert int(peak_mib) < 1024
