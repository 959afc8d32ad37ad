"""Image intake: turn untrusted bytes into an upright 8-bit RGB array, or refuse with a typed error.

The format is decided by content, never by file name. Only JPEG (and MPO, the multi-picture
JPEG cameras write), PNG, WebP, BMP and TIFF are opened; Pillow's other decoders (EPS, PDF, ...)
are never tried. Byte size, pixel count and dimensions are checked from the header *before*
any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import (
    BmpImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from faceaccord.errors import (
    EmptyImageError,
    ImageDimensionsError,
    ImageTooLargeError,
    InputError,
    NotAnImageError,
    TooManyPixelsError,
    TruncatedImageError,
    UnsupportedImageFormatError,
)
from faceaccord.settings import ImageLimits

__all__ = ["DecodedImage", "ImageFormat", "ImageSource", "decode_image", "load_image", "read_image"]


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    BMP = "bmp"
    TIFF = "tiff"


# Pillow format name -> ours. Importing the plugins registers exactly these decoders.
_PILLOW_FORMATS: dict[str, ImageFormat] = {
    JpegImagePlugin.JpegImageFile.format: ImageFormat.JPEG,
    MpoImagePlugin.MpoImageFile.format: ImageFormat.JPEG,
    PngImagePlugin.PngImageFile.format: ImageFormat.PNG,
    WebPImagePlugin.WebPImageFile.format: ImageFormat.WEBP,
    BmpImagePlugin.BmpImageFile.format: ImageFormat.BMP,
    TiffImagePlugin.TiffImageFile.format: ImageFormat.TIFF,
}

# MPO has no opener of its own: the JPEG opener returns MPO files.
_OPENERS = tuple(name for name in _PILLOW_FORMATS if name != MpoImagePlugin.MpoImageFile.format)


def _any(data: bytes) -> bool:
    return True


def _webp_riff(data: bytes) -> bool:
    return len(data) < 12 or data[8:12] == b"WEBP"  # RIFF also holds WAV, AVI, ...


def _bmp_header(data: bytes) -> bool:
    # "BM" is also how text can start: a BMP has four zero bytes at 6 (reserved) and an info
    # header of one of a few known sizes at 14.
    if len(data) < 10 or data[6:10] != b"\0\0\0\0":
        return False
    return len(data) < 18 or int.from_bytes(data[14:18], "little") in _BMP_INFO_SIZES


_BMP_INFO_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


# Leading bytes of the accepted formats (with a check of the bytes after them where the
# signature is short), to tell "truncated" from "not an image".
_ACCEPTED_MAGIC: tuple[tuple[bytes, str, Callable[[bytes], bool]], ...] = (
    (b"\xff\xd8\xff", "JPEG", _any),
    (b"\x89PNG\r\n\x1a\n", "PNG", _any),
    (b"RIFF", "WebP", _webp_riff),
    (b"BM", "BMP", _bmp_header),
    (b"II*\x00", "TIFF", _any),
    (b"MM\x00*", "TIFF", _any),
    (b"II+\x00", "BigTIFF", _any),
    (b"MM\x00+", "BigTIFF", _any),
)

# Leading bytes of formats we recognise but do not accept, to name them in the error.
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"%!PS", "PostScript"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An upright image as an H x W x 3 ``uint8`` RGB array, with where it came from."""

    pixels: NDArray[np.uint8]
    format: ImageFormat
    source_mode: str
    """Pillow's mode of the stored image before conversion (e.g. ``L``, ``RGBA``, ``I;16``)."""
    exif_orientation: int
    """The EXIF orientation tag that was applied (1 when the image was already upright)."""

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


ImageSource = DecodedImage | bytes | str | os.PathLike[str]
"""What the engine accepts: decoded pixels, encoded bytes, or a path to a file."""


def read_image(source: ImageSource, *, limits: ImageLimits) -> DecodedImage:
    """Decode any ``ImageSource``; a ``DecodedImage`` is passed through unchanged."""
    if isinstance(source, DecodedImage):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_image(bytes(source), limits=limits)
    if isinstance(source, str | os.PathLike):
        return load_image(Path(source), limits=limits)
    raise InputError(
        f"expected image bytes, a file path or a DecodedImage, got {type(source).__name__}"
    )


def load_image(path: Path, *, limits: ImageLimits) -> DecodedImage:
    """Read and decode a file, refusing oversized files before reading them."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InputError(f"{path} is not a regular file")
        if size > limits.max_bytes:
            raise _too_many_bytes(size, limits)
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except PermissionError:
        raise InputError(f"permission denied reading {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not an image file") from None
    return decode_image(data, limits=limits)


def decode_image(data: bytes, *, limits: ImageLimits) -> DecodedImage:
    """Decode encoded image bytes into an upright RGB array, or raise an ``ImageError``."""
    if not isinstance(data, bytes):
        raise InputError(f"expected image bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise EmptyImageError("the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise _too_many_bytes(len(data), limits)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Our own pixel limit (checked below) replaces Pillow's global bomb warning, and Pillow's
        # other warnings (corrupt EXIF or TIFF tags) must not reject, or pollute, a usable image.
        warnings.simplefilter("ignore")
        image = _open(data)
        try:
            fmt = _PILLOW_FORMATS[str(image.format)]
            _check_dimensions(image.size, limits)
            # Read before load(): Pillow's TIFF loader applies the tag itself and deletes it.
            orientation = _exif_orientation(image)
            image.load()
        except (TooManyPixelsError, ImageDimensionsError):
            raise
        except Image.DecompressionBombError as exc:
            raise TooManyPixelsError(f"the image is a decompression bomb: {exc}") from None
        except Exception as exc:  # Pillow raises many types for corrupt data; all mean one thing.
            raise TruncatedImageError(
                f"the {image.format} data is truncated or corrupt ({exc})"
            ) from None

        source_mode = image.mode
        try:
            if orientation != 1:
                image = ImageOps.exif_transpose(image)  # a no-op when load() already turned it
            pixels = _to_rgb8(image)
        except Exception as exc:
            raise UnsupportedImageFormatError(
                f"the {image.format} image's pixel mode {source_mode} cannot be converted to RGB "
                f"({exc})"
            ) from None
    return DecodedImage(
        pixels=pixels, format=fmt, source_mode=source_mode, exif_orientation=orientation
    )


def _too_many_bytes(size: int, limits: ImageLimits) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"the image is {size:,} bytes; the limit is {limits.max_bytes:,} bytes"
    )


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_OPENERS)
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(f"the image is a decompression bomb: {exc}") from None
    except Exception:  # any failure to open is classified below
        pass
    for magic, name, confirm in _ACCEPTED_MAGIC:
        if data.startswith(magic) and confirm(data):
            raise TruncatedImageError(
                f"the data starts like {name} but its header is truncated or corrupt "
                f"({len(data):,} bytes)"
            )
    head = data[:16].lstrip()
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic) or data.startswith(magic):
            raise UnsupportedImageFormatError(
                f"{name} images are not accepted; send JPEG, PNG, WebP, BMP or TIFF"
            )
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace")
        raise UnsupportedImageFormatError(
            f"ISO media ({brand!r}, e.g. HEIC/AVIF) images are not accepted; "
            "send JPEG, PNG, WebP, BMP or TIFF"
        )
    raise NotAnImageError(
        f"the data is not a recognised image (first bytes: {data[:8].hex(' ')}); "
        "send JPEG, PNG, WebP, BMP or TIFF"
    )


def _check_dimensions(size: tuple[int, int], limits: ImageLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDimensionsError(f"the image has no pixels ({width}x{height})")
    pixels = width * height
    if pixels > limits.max_pixels:
        raise TooManyPixelsError(
            f"the image is {width}x{height} = {pixels:,} pixels; "
            f"the limit is {limits.max_pixels:,} pixels"
        )
    if max(width, height) > limits.max_side:
        raise ImageDimensionsError(
            f"the image is {width}x{height}; no side may exceed {limits.max_side} pixels"
        )
    if min(width, height) < limits.min_side:
        raise ImageDimensionsError(
            f"the image is {width}x{height}; each side must be at least {limits.min_side} pixels"
        )
    aspect = max(width, height) / min(width, height)
    if aspect > limits.max_aspect_ratio:
        raise ImageDimensionsError(
            f"the image is {width}x{height}, an aspect ratio of {aspect:.1f}:1; "
            f"the limit is {limits.max_aspect_ratio:g}:1"
        )


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # a corrupt EXIF block must not reject a good photograph
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def _to_rgb8(image: Image.Image) -> NDArray[np.uint8]:
    mode = image.mode
    if mode in _ALPHA_MODES or "transparency" in image.info:
        # "La" (premultiplied grey + alpha) has no direct conversion to RGBA; LA does.
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode == "RGB":
        rgb = image
    elif mode.startswith("I;16") or mode in {"I", "F"}:
        rgb = Image.fromarray(_high_depth_to_uint8(image)).convert("RGB")
    else:  # L, 1, P, CMYK, YCbCr, LAB, HSV
        rgb = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _high_depth_to_uint8(image: Image.Image) -> NDArray[np.uint8]:
    """16-bit, 32-bit integer and float greyscale down to 8 bits, keeping the full range."""
    values = np.asarray(image)
    if image.mode == "F":
        as_float = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if as_float.max(initial=0.0) <= 1.0 else 1.0
        return np.rint(np.clip(as_float * scale, 0, 255)).astype(np.uint8)
    as_int = values.astype(np.int64)
    if image.mode.startswith("I;16") or as_int.max(initial=0) > 255:
        return (np.clip(as_int, 0, 65535) >> 8).astype(np.uint8)
    return np.clip(as_int, 0, 255).astype(np.uint8)
