"""Image intake: untrusted bytes become an upright H x W x 3 uint8 RGB array, or a typed refusal.

Every image here is built in memory with Pillow/numpy; only ``tmp_path`` touches the disk.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image

from faceaccord.biometrics.images import (
    DecodedImage,
    ImageFormat,
    decode_image,
    load_image,
    read_image,
)
from faceaccord.errors import (
    EmptyImageError,
    FaceAccordError,
    ImageDimensionsError,
    ImageError,
    ImageTooLargeError,
    InputError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)
from faceaccord.settings import ImageLimits

LIMITS = ImageLimits()

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# ---------------------------------------------------------------- helpers


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int = 48, height: int = 32, seed: int = 0) -> Image.Image:
    """An RGB image of random pixels (incompressible, so byte sizes are predictable)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def marked(width: int = 48, height: int = 32) -> Image.Image:
    """A blue image with an 8x8 red marker in its stored top-left corner."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, 8, 8))
    return image


def with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_ihdr(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    return png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_rgb8(decoded: DecodedImage, *, width: int, height: int) -> None:
    pixels = decoded.pixels
    assert isinstance(pixels, np.ndarray)
    assert pixels.shape == (height, width, 3)
    assert pixels.dtype == np.uint8
    assert pixels.flags.c_contiguous
    assert (decoded.width, decoded.height) == (width, height)


def near(pixel: NDArray[np.uint8], colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


def first_pixel(decoded: DecodedImage) -> tuple[int, ...]:
    return tuple(int(v) for v in decoded.pixels[0, 0])


# ---------------------------------------------------------------- accepted formats

# (Pillow format, save parameters, expected format, lossless)
ACCEPTED = [
    pytest.param("JPEG", {"quality": 95}, ImageFormat.JPEG, False, id="jpeg"),
    pytest.param("PNG", {}, ImageFormat.PNG, True, id="png"),
    pytest.param("WEBP", {"lossless": True}, ImageFormat.WEBP, True, id="webp-lossless"),
    pytest.param("WEBP", {"quality": 90}, ImageFormat.WEBP, False, id="webp-lossy"),
    pytest.param("BMP", {}, ImageFormat.BMP, True, id="bmp"),
    pytest.param("TIFF", {}, ImageFormat.TIFF, True, id="tiff"),
    pytest.param("TIFF", {"compression": "tiff_lzw"}, ImageFormat.TIFF, True, id="tiff-lzw"),
]


@pytest.mark.parametrize(("pillow_format", "params", "expected", "lossless"), ACCEPTED)
def test_an_accepted_format_decodes_to_contiguous_rgb8(
    pillow_format: str, params: dict[str, object], expected: ImageFormat, lossless: bool
) -> None:
    original = noise(48, 32) if lossless else marked(48, 32)
    decoded = decode_image(encode(original, pillow_format, **params), limits=LIMITS)

    assert_rgb8(decoded, width=48, height=32)
    assert decoded.format is expected
    assert decoded.source_mode == "RGB"
    assert decoded.exif_orientation == 1
    if lossless:
        assert np.array_equal(decoded.pixels, np.asarray(original))
    else:
        assert near(decoded.pixels[2, 2], RED)
        assert near(decoded.pixels[20, 40], BLUE)


@pytest.mark.parametrize(("pillow_format", "params", "expected", "lossless"), ACCEPTED)
def test_a_file_is_decoded_by_content_whatever_its_name_says(
    tmp_path: Path,
    pillow_format: str,
    params: dict[str, object],
    expected: ImageFormat,
    lossless: bool,
) -> None:
    misleading = ".gif" if expected is ImageFormat.JPEG else ".jpg"
    path = tmp_path / f"photo{misleading}"
    path.write_bytes(encode(noise(48, 32), pillow_format, **params))

    decoded = load_image(path, limits=LIMITS)

    assert decoded.format is expected
    assert_rgb8(decoded, width=48, height=32)


def test_a_webp_file_named_jpg_is_decoded_by_content(tmp_path: Path) -> None:
    path = tmp_path / "selfie.jpg"
    path.write_bytes(encode(noise(), "WEBP", lossless=True))

    decoded = load_image(path, limits=LIMITS)

    assert decoded.format is ImageFormat.WEBP
    assert np.array_equal(decoded.pixels, np.asarray(noise()))


def test_a_file_without_any_suffix_is_decoded_by_content(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(encode(noise(), "PNG"))

    assert load_image(path, limits=LIMITS).format is ImageFormat.PNG


def test_an_mpo_multi_picture_jpeg_is_reported_as_jpeg_and_its_first_frame_is_used() -> None:
    first, second = marked(48, 32), Image.new("RGB", (48, 32), (0, 255, 0))
    data = encode(first, "MPO", save_all=True, append_images=[second])

    decoded = decode_image(data, limits=LIMITS)

    assert decoded.format is ImageFormat.JPEG
    assert_rgb8(decoded, width=48, height=32)
    assert near(decoded.pixels[2, 2], RED)
    assert near(decoded.pixels[20, 40], BLUE)


def test_read_image_accepts_bytes_bytearray_memoryview_str_and_path(tmp_path: Path) -> None:
    data = encode(noise(), "PNG")
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    expected = np.asarray(noise())

    for source in (data, bytearray(data), memoryview(data), str(path), path):
        decoded = read_image(source, limits=LIMITS)  # type: ignore[arg-type]
        assert np.array_equal(decoded.pixels, expected), type(source).__name__


def test_read_image_passes_a_decoded_image_through_unchanged() -> None:
    decoded = decode_image(encode(noise(), "PNG"), limits=LIMITS)

    assert read_image(decoded, limits=LIMITS) is decoded


# ---------------------------------------------------------------- EXIF orientation


def test_a_jpeg_with_orientation_6_is_rotated_upright_clockwise() -> None:
    data = encode(marked(48, 32), "JPEG", quality=95, exif=with_orientation(6))

    decoded = decode_image(data, limits=LIMITS)

    assert decoded.exif_orientation == 6
    assert_rgb8(decoded, width=32, height=48)  # stored landscape, displayed portrait
    assert near(decoded.pixels[2, 29], RED)  # stored top-left -> displayed top-right
    assert near(decoded.pixels[2, 2], BLUE)
    assert near(decoded.pixels[45, 2], BLUE)


def test_a_jpeg_with_orientation_3_is_turned_upside_down() -> None:
    data = encode(marked(48, 32), "JPEG", quality=95, exif=with_orientation(3))

    decoded = decode_image(data, limits=LIMITS)

    assert decoded.exif_orientation == 3
    assert_rgb8(decoded, width=48, height=32)
    assert near(decoded.pixels[29, 45], RED)  # stored top-left -> displayed bottom-right
    assert near(decoded.pixels[2, 2], BLUE)


def test_a_jpeg_with_orientation_8_is_rotated_upright_counter_clockwise() -> None:
    data = encode(marked(48, 32), "JPEG", quality=95, exif=with_orientation(8))

    decoded = decode_image(data, limits=LIMITS)

    assert decoded.exif_orientation == 8
    assert_rgb8(decoded, width=32, height=48)
    assert near(decoded.pixels[45, 2], RED)  # stored top-left -> displayed bottom-left
    assert near(decoded.pixels[2, 2], BLUE)
    assert near(decoded.pixels[2, 29], BLUE)


def test_a_jpeg_with_orientation_1_or_no_exif_is_left_as_stored() -> None:
    for data in (
        encode(marked(48, 32), "JPEG", quality=95, exif=with_orientation(1)),
        encode(marked(48, 32), "JPEG", quality=95),
    ):
        decoded = decode_image(data, limits=LIMITS)
        assert decoded.exif_orientation == 1
        assert_rgb8(decoded, width=48, height=32)
        assert near(decoded.pixels[2, 2], RED)


def test_an_out_of_range_orientation_tag_is_ignored() -> None:
    data = encode(marked(48, 32), "JPEG", quality=95, exif=with_orientation(9))

    decoded = decode_image(data, limits=LIMITS)

    assert decoded.exif_orientation == 1
    assert_rgb8(decoded, width=48, height=32)
    assert near(decoded.pixels[2, 2], RED)


@pytest.mark.parametrize(
    ("pillow_format", "params"),
    [
        pytest.param("PNG", {}, id="png"),
        pytest.param("WEBP", {"lossless": True}, id="webp"),
    ],
)
def test_exif_orientation_is_honoured_in_other_formats_too(
    pillow_format: str, params: dict[str, object]
) -> None:
    data = encode(marked(48, 32), pillow_format, exif=with_orientation(6), **params)

    decoded = decode_image(data, limits=LIMITS)

    assert decoded.exif_orientation == 6
    assert_rgb8(decoded, width=32, height=48)
    assert tuple(decoded.pixels[0, 31]) == RED
    assert tuple(decoded.pixels[0, 0]) == BLUE


def test_a_tiff_orientation_tag_is_honoured() -> None:
    data = encode(marked(48, 32), "TIFF", exif=with_orientation(6))

    decoded = decode_image(data, limits=LIMITS)

    assert_rgb8(decoded, width=32, height=48)
    assert tuple(decoded.pixels[0, 31]) == RED
    assert tuple(decoded.pixels[0, 0]) == BLUE


def test_a_tiff_orientation_tag_is_reported() -> None:
    data = encode(marked(48, 32), "TIFF", exif=with_orientation(6))

    assert decode_image(data, limits=LIMITS).exif_orientation == 6


# ---------------------------------------------------------------- pixel modes


def test_a_grayscale_image_becomes_three_equal_channels() -> None:
    gray = Image.new("L", (32, 32), 77)
    gray.putpixel((5, 5), 200)

    decoded = decode_image(encode(gray, "PNG"), limits=LIMITS)

    assert decoded.source_mode == "L"
    assert_rgb8(decoded, width=32, height=32)
    assert first_pixel(decoded) == (77, 77, 77)
    assert tuple(decoded.pixels[5, 5]) == (200, 200, 200)


@pytest.mark.parametrize("pillow_format", ["PNG", "BMP", "TIFF"])
def test_a_one_bit_image_becomes_black_and_white(pillow_format: str) -> None:
    bilevel = Image.new("1", (32, 32), 0)
    bilevel.putpixel((3, 4), 1)

    decoded = decode_image(encode(bilevel, pillow_format), limits=LIMITS)

    assert decoded.source_mode == "1"
    assert_rgb8(decoded, width=32, height=32)
    assert first_pixel(decoded) == (0, 0, 0)
    assert tuple(decoded.pixels[4, 3]) == WHITE


def palette_image() -> Image.Image:
    image = Image.new("P", (32, 32), 0)
    image.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 16, 32))  # left half index 1, right half index 0
    return image


def test_a_palette_image_without_transparency_keeps_its_colours() -> None:
    decoded = decode_image(encode(palette_image(), "PNG"), limits=LIMITS)

    assert decoded.source_mode == "P"
    assert_rgb8(decoded, width=32, height=32)
    assert first_pixel(decoded) == (200, 100, 50)
    assert tuple(decoded.pixels[0, 31]) == (10, 20, 30)


def test_a_palette_image_with_a_transparent_index_shows_white_there() -> None:
    decoded = decode_image(encode(palette_image(), "PNG", transparency=0), limits=LIMITS)

    assert decoded.source_mode == "P"
    assert_rgb8(decoded, width=32, height=32)
    assert first_pixel(decoded) == (200, 100, 50)  # opaque index 1
    assert tuple(decoded.pixels[0, 31]) == WHITE  # transparent index 0


def test_grayscale_with_alpha_is_composited_onto_white() -> None:
    image = Image.new("LA", (32, 32), (100, 255))
    image.paste((100, 0), (16, 0, 32, 32))  # right half fully transparent
    image.paste((0, 128), (0, 16, 16, 32))  # bottom-left black at half alpha

    decoded = decode_image(encode(image, "PNG"), limits=LIMITS)

    assert decoded.source_mode == "LA"
    assert_rgb8(decoded, width=32, height=32)
    assert first_pixel(decoded) == (100, 100, 100)
    assert tuple(decoded.pixels[0, 31]) == WHITE
    assert near(decoded.pixels[31, 0], (127, 127, 127), tolerance=1)


@pytest.mark.parametrize(
    ("pillow_format", "params"),
    [
        pytest.param("PNG", {}, id="png"),
        pytest.param("WEBP", {"lossless": True, "exact": True}, id="webp"),
        pytest.param("TIFF", {}, id="tiff"),
    ],
)
def test_transparent_rgba_pixels_are_composited_onto_white(
    pillow_format: str, params: dict[str, object]
) -> None:
    image = Image.new("RGBA", (32, 32), (*RED, 255))
    image.paste((0, 0, 0, 0), (16, 0, 32, 32))  # right half: transparent *black*
    image.paste((0, 0, 255, 128), (0, 16, 16, 32))  # bottom-left: half-transparent blue

    decoded = decode_image(encode(image, pillow_format, **params), limits=LIMITS)

    assert decoded.source_mode == "RGBA"
    assert_rgb8(decoded, width=32, height=32)
    assert first_pixel(decoded) == RED
    assert tuple(decoded.pixels[0, 31]) == WHITE
    assert near(decoded.pixels[31, 0], (127, 127, 255), tolerance=1)


@pytest.mark.parametrize(
    ("image", "transparent"),
    [
        pytest.param(Image.new("RGB", (32, 32), (10, 20, 30)), (10, 20, 30), id="rgb"),
        pytest.param(Image.new("L", (32, 32), 100), 100, id="l"),
    ],
)
def test_a_png_transparent_colour_is_composited_onto_white(
    image: Image.Image, transparent: object
) -> None:
    decoded = decode_image(encode(image, "PNG", transparency=transparent), limits=LIMITS)

    assert first_pixel(decoded) == WHITE


def test_a_cmyk_jpeg_is_converted_to_rgb() -> None:
    image = Image.new("CMYK", (32, 32), (255, 0, 0, 0))  # pure cyan
    image.paste((0, 0, 0, 0), (16, 0, 32, 32))  # white

    decoded = decode_image(encode(image, "JPEG", quality=95), limits=LIMITS)

    assert decoded.format is ImageFormat.JPEG
    assert decoded.source_mode == "CMYK"
    assert_rgb8(decoded, width=32, height=32)
    assert near(decoded.pixels[16, 4], (0, 255, 255))
    assert near(decoded.pixels[16, 28], WHITE)


SIXTEEN_BIT_RAMP = np.array([0, 200, 256, 32768, 40000, 65535], dtype=np.uint16)
SIXTEEN_BIT_EXPECTED = [0, 0, 1, 128, 156, 255]  # value >> 8: full range, nothing clipped


def sixteen_bit_gray(dtype: type[np.integer]) -> Image.Image:
    return Image.fromarray(np.tile(SIXTEEN_BIT_RAMP, (24, 4)).astype(dtype))


@pytest.mark.parametrize(
    ("pillow_format", "dtype"),
    [
        pytest.param("PNG", np.uint16, id="png-16bit"),
        pytest.param("TIFF", np.uint16, id="tiff-16bit"),
        pytest.param("TIFF", np.int32, id="tiff-32bit-int"),
    ],
)
def test_sixteen_bit_grayscale_is_scaled_to_eight_bits_over_its_full_range(
    pillow_format: str, dtype: type[np.integer]
) -> None:
    decoded = decode_image(encode(sixteen_bit_gray(dtype), pillow_format), limits=LIMITS)

    assert decoded.source_mode in {"I;16", "I;16B", "I"}
    assert_rgb8(decoded, width=24, height=24)
    row = decoded.pixels[0, :6]
    assert row[:, 0].tolist() == SIXTEEN_BIT_EXPECTED
    assert np.array_equal(row[:, 0], row[:, 1])
    assert np.array_equal(row[:, 0], row[:, 2])


def test_a_big_endian_sixteen_bit_tiff_is_scaled_like_a_little_endian_one() -> None:
    image = Image.fromarray(np.tile(SIXTEEN_BIT_RAMP, (24, 4)).astype(">u2"))

    decoded = decode_image(encode(image, "TIFF"), limits=LIMITS)

    assert decoded.source_mode == "I;16B"
    assert decoded.pixels[0, :6, 0].tolist() == SIXTEEN_BIT_EXPECTED


def test_a_float_tiff_in_the_unit_range_is_scaled_to_eight_bits() -> None:
    values = np.tile(np.array([0.0, 0.25, 0.5, 1.0], dtype=np.float32), (24, 6))

    decoded = decode_image(encode(Image.fromarray(values), "TIFF"), limits=LIMITS)

    assert decoded.source_mode == "F"
    assert_rgb8(decoded, width=24, height=24)
    row = decoded.pixels[0, :4, 0].astype(int)
    assert np.all(np.abs(row - np.array([0, 64, 128, 255])) <= 1)


def test_a_float_tiff_in_the_byte_range_keeps_its_values() -> None:
    values = np.tile(np.array([0.0, 100.0, 200.0, 255.0], dtype=np.float32), (24, 6))

    decoded = decode_image(encode(Image.fromarray(values), "TIFF"), limits=LIMITS)

    assert decoded.source_mode == "F"
    assert decoded.pixels[0, :4, 0].tolist() == [0, 100, 200, 255]


def test_non_finite_floats_become_black_rather_than_failing() -> None:
    values = np.full((24, 24), 0.5, dtype=np.float32)
    values[0, :3] = [np.nan, np.inf, -np.inf]

    decoded = decode_image(encode(Image.fromarray(values), "TIFF"), limits=LIMITS)

    assert decoded.pixels[0, :3, 0].tolist() == [0, 0, 0]
    assert abs(int(decoded.pixels[0, 3, 0]) - 128) <= 1


def la_tiff_with_associated_alpha() -> bytes:
    """A grey + *premultiplied* alpha TIFF (ExtraSamples = 1), which Pillow opens as mode La."""
    data = encode(Image.new("LA", (32, 32), (100, 255)), "TIFF")
    unassociated = b"\x52\x01\x03\x00\x01\x00\x00\x00\x02\x00"  # tag 338, SHORT, 1, value 2
    assert data.count(unassociated) == 1
    return data.replace(unassociated, unassociated[:-2] + b"\x01\x00")


def test_a_tiff_with_premultiplied_grey_alpha_decodes() -> None:
    decoded = decode_image(la_tiff_with_associated_alpha(), limits=LIMITS)

    assert decoded.source_mode == "La"
    assert first_pixel(decoded) == (100, 100, 100)


# ---------------------------------------------------------------- refusals: content


def test_empty_bytes_are_refused_as_an_empty_image() -> None:
    with pytest.raises(EmptyImageError, match=r"empty \(0 bytes\)"):
        decode_image(b"", limits=LIMITS)


def test_an_empty_file_is_refused_as_an_empty_image(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()

    with pytest.raises(EmptyImageError):
        load_image(path, limits=LIMITS)


def test_random_bytes_are_not_an_image() -> None:
    data = b"\x13\x37" + random.Random(0).randbytes(4094)

    with pytest.raises(NotAnImageError, match="not a recognised image") as caught:
        decode_image(data, limits=LIMITS)
    assert "13 37" in caught.value.message  # the leading bytes are shown, in hex


def test_a_text_file_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("Dear diary, today I took a photo.\n" * 20)

    with pytest.raises(NotAnImageError, match="send JPEG, PNG, WebP, BMP or TIFF"):
        load_image(path, limits=LIMITS)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        pytest.param(encode(noise(), "GIF"), "GIF", id="gif"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF", id="pdf"),
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + bytes(64), "heic", id="heic"),
        pytest.param(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00" + bytes(64), "avif", id="avif"),
        pytest.param(encode(noise(), "ICO"), "ICO", id="ico"),
        pytest.param(b"8BPS\x00\x01" + bytes(64), "PSD", id="psd"),
        pytest.param(b'  \n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG", id="svg"),
    ],
)
def test_a_recognised_but_unsupported_format_is_refused_by_name(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedImageFormatError) as caught:
        decode_image(data, limits=LIMITS)
    assert named in caught.value.message
    assert "not accepted" in caught.value.message


def test_a_gif_named_png_is_refused_as_a_gif(tmp_path: Path) -> None:
    path = tmp_path / "animation.png"
    path.write_bytes(encode(noise(), "GIF"))

    with pytest.raises(UnsupportedImageFormatError, match="GIF"):
        load_image(path, limits=LIMITS)


def test_an_iso_media_file_is_refused_naming_heic_avif() -> None:
    data = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)

    with pytest.raises(UnsupportedImageFormatError, match="HEIC/AVIF"):
        decode_image(data, limits=LIMITS)


@pytest.mark.parametrize(
    ("pillow_format", "params"),
    [
        pytest.param("JPEG", {"quality": 95}, id="jpeg"),
        pytest.param("PNG", {}, id="png"),
        pytest.param("WEBP", {"lossless": True}, id="webp"),
        pytest.param("BMP", {}, id="bmp"),
        pytest.param("TIFF", {}, id="tiff"),
    ],
)
def test_an_image_cut_in_half_is_refused_as_truncated(
    pillow_format: str, params: dict[str, object]
) -> None:
    data = encode(noise(64, 64), pillow_format, **params)

    with pytest.raises(TruncatedImageError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], limits=LIMITS)


@pytest.mark.parametrize(
    ("pillow_format", "cut", "named"),
    [
        pytest.param("JPEG", 3, "JPEG", id="jpeg-soi-only"),
        pytest.param("JPEG", 20, "JPEG", id="jpeg-after-app0"),
        pytest.param("PNG", 8, "PNG", id="png-signature-only"),
        pytest.param("PNG", 20, "PNG", id="png-mid-ihdr"),
        pytest.param("WEBP", 12, "WebP", id="webp-riff-header-only"),
        pytest.param("BMP", 10, "BMP", id="bmp-mid-header"),
        pytest.param("TIFF", 4, "TIFF", id="tiff-magic-only"),
    ],
)
def test_an_image_cut_right_after_its_header_bytes_is_refused_as_truncated(
    pillow_format: str, cut: int, named: str
) -> None:
    data = encode(noise(), pillow_format)[:cut]

    with pytest.raises(TruncatedImageError) as caught:
        decode_image(data, limits=LIMITS)
    assert f"starts like {named}" in caught.value.message


def test_a_truncated_file_on_disk_is_refused_as_truncated(tmp_path: Path) -> None:
    data = encode(noise(64, 64), "JPEG")
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(TruncatedImageError):
        load_image(path, limits=LIMITS)


# ---------------------------------------------------------------- refusals: size limits


def test_bytes_over_the_byte_limit_are_refused_before_decoding() -> None:
    data = encode(noise(), "PNG")
    limits = ImageLimits(max_bytes=1000)
    assert len(data) > 1000

    with pytest.raises(ImageTooLargeError) as caught:
        decode_image(data, limits=limits)
    assert "1,000 bytes" in caught.value.message
    assert f"{len(data):,}" in caught.value.message


def test_bytes_at_exactly_the_byte_limit_are_accepted() -> None:
    data = encode(noise(), "PNG")

    decoded = decode_image(data, limits=ImageLimits(max_bytes=len(data)))

    assert decoded.format is ImageFormat.PNG


def test_bytes_over_the_byte_limit_are_refused_even_if_they_are_not_an_image() -> None:
    with pytest.raises(ImageTooLargeError):
        decode_image(b"x" * 101, limits=ImageLimits(max_bytes=100))


def test_a_file_over_the_byte_limit_is_refused_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as handle:  # sparse: no bytes are actually written
        handle.truncate(LIMITS.max_bytes + 1)

    def must_not_read(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the oversized file was opened for reading")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "open", must_not_read)
        patch.setattr(Path, "read_bytes", must_not_read)
        with pytest.raises(ImageTooLargeError) as caught:
            load_image(path, limits=LIMITS)
    assert f"{LIMITS.max_bytes:,} bytes" in caught.value.message
    assert f"{LIMITS.max_bytes + 1:,}" in caught.value.message


def test_too_many_pixels_are_refused_with_the_limit_named() -> None:
    data = encode(noise(48, 32), "PNG")

    with pytest.raises(TooManyPixelsError) as caught:
        decode_image(data, limits=ImageLimits(max_pixels=1000))
    assert "48x32" in caught.value.message
    assert "1,536 pixels" in caught.value.message
    assert "1,000 pixels" in caught.value.message


def test_the_pixel_limit_is_checked_from_the_header_without_decoding() -> None:
    # A PNG header declaring 10000 x 6000 (60 Mpx, over the default 50 Mpx) and no pixel data
    # at all: if anything were decoded, this would be refused as truncated instead.
    header_only = PNG_SIGNATURE + png_ihdr(10_000, 6_000) + png_chunk(b"IEND", b"")

    with pytest.raises(TooManyPixelsError) as caught:
        decode_image(header_only, limits=LIMITS)
    assert "10000x6000" in caught.value.message
    assert f"{LIMITS.max_pixels:,} pixels" in caught.value.message


def tiny_png_bomb(width: int, height: int) -> bytes:
    """A complete, valid all-black 1-bit PNG whose zlib stream is a few kilobytes."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    stream = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        PNG_SIGNATURE
        + png_ihdr(width, height, bit_depth=1)
        + png_chunk(b"IDAT", stream)
        + png_chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_as_too_many_pixels() -> None:
    bomb = tiny_png_bomb(10_000, 6_000)
    assert len(bomb) < 100_000

    with pytest.raises(TooManyPixelsError, match="10000x6000"):
        decode_image(bomb, limits=LIMITS)


def test_a_header_beyond_pillows_own_bomb_limit_is_still_too_many_pixels() -> None:
    header_only = PNG_SIGNATURE + png_ihdr(20_000, 20_000) + png_chunk(b"IEND", b"")

    with pytest.raises(TooManyPixelsError, match="decompression bomb"):
        decode_image(header_only, limits=LIMITS)


def test_a_side_over_the_maximum_is_refused() -> None:
    data = encode(noise(120, 50), "PNG")

    with pytest.raises(ImageDimensionsError) as caught:
        decode_image(data, limits=ImageLimits(max_side=100))
    assert "120x50" in caught.value.message
    assert "exceed 100 pixels" in caught.value.message


@pytest.mark.parametrize(("width", "height"), [(15, 40), (40, 15)])
def test_a_side_under_the_minimum_is_refused(width: int, height: int) -> None:
    data = encode(noise(width, height), "PNG")

    with pytest.raises(ImageDimensionsError) as caught:
        decode_image(data, limits=LIMITS)
    assert f"{width}x{height}" in caught.value.message
    assert f"at least {LIMITS.min_side} pixels" in caught.value.message


def test_sides_exactly_at_the_limits_are_accepted() -> None:
    limits = ImageLimits(min_side=16, max_side=64)

    decoded = decode_image(encode(noise(64, 16), "PNG"), limits=limits)

    assert (decoded.width, decoded.height) == (64, 16)


@pytest.mark.parametrize(("width", "height"), [(200, 16), (16, 200)])
def test_an_extreme_aspect_ratio_is_refused(width: int, height: int) -> None:
    data = encode(noise(width, height), "PNG")

    with pytest.raises(ImageDimensionsError) as caught:
        decode_image(data, limits=LIMITS)
    assert "12.5:1" in caught.value.message
    assert "limit is 12:1" in caught.value.message


def test_an_aspect_ratio_at_the_limit_is_accepted() -> None:
    decoded = decode_image(encode(noise(192, 16), "PNG"), limits=LIMITS)

    assert (decoded.width, decoded.height) == (192, 16)


def test_a_header_declaring_zero_width_is_refused() -> None:
    zero_width = PNG_SIGNATURE + png_ihdr(0, 40) + png_chunk(b"IEND", b"")

    with pytest.raises(ImageError):
        decode_image(zero_width, limits=LIMITS)


# ---------------------------------------------------------------- refusals: caller errors


@pytest.mark.parametrize(
    ("source", "type_name"),
    [(None, "NoneType"), (42, "int"), ([1, 2, 3], "list"), (np.zeros((4, 4, 3)), "ndarray")],
)
def test_read_image_refuses_what_is_not_bytes_a_path_or_a_decoded_image(
    source: object, type_name: str
) -> None:
    with pytest.raises(InputError) as caught:
        read_image(source, limits=LIMITS)  # type: ignore[arg-type]
    assert type_name in caught.value.message
    assert caught.value.code == "invalid_input"


def test_decode_image_refuses_a_string() -> None:
    with pytest.raises(InputError, match="expected image bytes, got str"):
        decode_image("not bytes", limits=LIMITS)  # type: ignore[arg-type]


def test_a_path_that_does_not_exist_is_invalid_input(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "photo.jpg"

    with pytest.raises(InputError, match="no such file") as caught:
        read_image(missing, limits=LIMITS)
    assert str(missing) in caught.value.message
    assert not isinstance(caught.value, ImageError)


def test_a_directory_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a regular file") as caught:
        load_image(tmp_path, limits=LIMITS)
    assert not isinstance(caught.value, ImageError)


def test_a_directory_given_as_a_string_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read_image(str(tmp_path), limits=LIMITS)


# ---------------------------------------------------------------- error taxonomy

IMAGE_ERRORS = {
    EmptyImageError: "empty_image",
    NotAnImageError: "not_an_image",
    UnsupportedImageFormatError: "unsupported_image_format",
    TruncatedImageError: "truncated_image",
    ImageTooLargeError: "image_too_large",
    TooManyPixelsError: "too_many_pixels",
    ImageDimensionsError: "bad_image_dimensions",
}


@pytest.mark.parametrize(
    ("error", "code"), [pytest.param(error, code, id=code) for error, code in IMAGE_ERRORS.items()]
)
def test_every_image_error_is_an_input_error_with_a_stable_code(
    error: type[ImageError], code: str
) -> None:
    assert issubclass(error, ImageError)
    assert issubclass(error, InputError)
    assert issubclass(error, FaceAccordError)
    assert error.code == code
    instance = error("why")
    assert instance.code == code
    assert instance.message == "why"
    assert str(instance) == "why"


def test_image_error_codes_are_distinct_from_each_other_and_from_their_parents() -> None:
    codes = [*IMAGE_ERRORS.values(), ImageError.code, InputError.code]

    assert len(set(codes)) == len(codes)
    assert ImageError.code == "invalid_image"
    assert InputError.code == "invalid_input"


# ---------------------------------------------------------------- warnings


def jpeg_with_corrupt_exif() -> bytes:
    """A good JPEG whose EXIF directory claims more entries than it holds."""
    exif = bytearray(with_orientation(6).tobytes())  # b"Exif\0\0MM\0*\0\0\0\x08" + IFD
    assert exif[14:16] == b"\x00\x01"  # big-endian entry count
    exif[14:16] = b"\x00\x02"
    return encode(marked(48, 32), "JPEG", quality=95, exif=bytes(exif))


def tiff_with_a_tag_pointing_past_the_end() -> bytes:
    data = bytearray(encode(noise(), "TIFF", tiffinfo={270: "x" * 64}))
    description = data.find(b"\x0e\x01\x02\x00")  # ImageDescription, ASCII, little-endian
    struct.pack_into("<I", data, description + 8, 0x7FFFFF00)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg_with_corrupt_exif(), id="jpeg-corrupt-exif"),
        pytest.param(tiff_with_a_tag_pointing_past_the_end(), id="tiff-tag-past-end"),
    ],
)
def test_corrupt_metadata_does_not_leak_pillow_warnings(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            decoded = decode_image(data, limits=LIMITS)
        except ImageError:
            return
    assert_rgb8(decoded, width=decoded.width, height=decoded.height)


def test_a_jpeg_with_corrupt_exif_is_still_decoded_when_warnings_are_not_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded = decode_image(jpeg_with_corrupt_exif(), limits=LIMITS)

    assert decoded.format is ImageFormat.JPEG
    assert (decoded.width, decoded.height) in {(48, 32), (32, 48)}


# ---------------------------------------------------------------- properties

FUZZ_LIMITS = ImageLimits(min_side=1, max_pixels=1_000_000)
FUZZ_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Seeds without metadata blocks: corrupting these must be refused (or decoded) silently.
PLAIN_SEEDS = {
    "png": encode(noise(24, 20), "PNG"),
    "png-palette": encode(noise(24, 20).convert("P"), "PNG"),
    "png-16bit": encode(sixteen_bit_gray(np.uint16), "PNG"),
    "jpeg": encode(marked(24, 20), "JPEG"),
    "jpeg-progressive": encode(marked(24, 20), "JPEG", progressive=True),
    "webp": encode(noise(24, 20), "WEBP"),
    "bmp": encode(noise(24, 20), "BMP"),
}

# Seeds with EXIF/TIFF directories, where Pillow warns about corruption.
METADATA_SEEDS = {
    "jpeg-exif": encode(marked(24, 20), "JPEG", exif=with_orientation(6)),
    "tiff": encode(noise(24, 20), "TIFF"),
    "tiff-lzw": encode(noise(24, 20), "TIFF", compression="tiff_lzw"),
    "tiff-16bit": encode(sixteen_bit_gray(np.uint16), "TIFF"),
    "tiff-float": encode(Image.fromarray(np.full((20, 24), 0.5, np.float32)), "TIFF"),
}


def decodes_or_raises_an_image_error(data: bytes) -> None:
    try:
        decoded = decode_image(data, limits=FUZZ_LIMITS)
    except ImageError:
        return
    assert isinstance(decoded, DecodedImage)
    assert decoded.pixels.ndim == 3
    assert decoded.pixels.shape[2] == 3
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.flags.c_contiguous
    assert decoded.width * decoded.height <= FUZZ_LIMITS.max_pixels
    assert isinstance(decoded.format, ImageFormat)
    assert 1 <= decoded.exif_orientation <= 8


@st.composite
def corrupted(draw: st.DrawFn, seeds: dict[str, bytes]) -> bytes:
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=1, max_value=len(data)))]
    flips = draw(
        st.lists(
            st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
            max_size=8,
        )
    )
    for index, value in flips:
        data[index] = value
    return bytes(data)


@FUZZ_SETTINGS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_raise_an_image_error(data: bytes) -> None:
    decodes_or_raises_an_image_error(data)


@FUZZ_SETTINGS
@given(
    st.sampled_from([b"\xff\xd8\xff", PNG_SIGNATURE, b"RIFF", b"BM"]),
    st.binary(max_size=512),
)
def test_arbitrary_bytes_behind_a_valid_magic_decode_or_raise_an_image_error(
    magic: bytes, tail: bytes
) -> None:
    decodes_or_raises_an_image_error(magic + tail)


@FUZZ_SETTINGS
@given(corrupted(PLAIN_SEEDS))
def test_truncated_or_flipped_images_decode_or_raise_an_image_error(data: bytes) -> None:
    decodes_or_raises_an_image_error(data)


@FUZZ_SETTINGS
@given(st.sampled_from([b"II*\x00", b"MM\x00*"]), st.binary(max_size=512))
def test_arbitrary_bytes_behind_a_tiff_magic_decode_or_raise_an_image_error(
    magic: bytes, tail: bytes
) -> None:
    decodes_or_raises_an_image_error(magic + tail)


@FUZZ_SETTINGS
@given(corrupted(METADATA_SEEDS))
def test_images_with_corrupted_metadata_decode_or_raise_an_image_error(data: bytes) -> None:
    decodes_or_raises_an_image_error(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"RIFF$\0\0\0WAVEfmt " + bytes(64), id="wav-is-riff-but-not-webp"),
        pytest.param(b"BMW owners club\nmeeting on Sunday\n", id="text-starting-with-BM"),
    ],
)
def test_other_data_sharing_a_short_signature_is_not_called_a_truncated_image(data: bytes) -> None:
    with pytest.raises(NotAnImageError):
        decode_image(data, limits=LIMITS)


def test_a_truncated_bigtiff_is_called_truncated() -> None:
    with pytest.raises(TruncatedImageError, match="BigTIFF"):
        decode_image(b"II+\x00\x08\x00\x00\x00" + bytes(8), limits=LIMITS)
