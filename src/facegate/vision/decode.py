"""Safe image decoding: bytes, a path or an array in, 8-bit RGB ``numpy`` array out.

The format is sniffed from the content (never the file name), EXIF orientation is applied,
and grey, RGBA, palette and 16-bit images become 8-bit RGB. Limits are enforced before any
expensive work: the byte size before reading, the pixel count from the header before the
pixels are decoded, so a hostile file cannot exhaust memory. Every failure is a typed error.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on malformed data

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegate.errors import ImageDecodeError, ImageTooLarge, ImageTooSmall

# Formats a camera, a phone or a test set produces. Restricting the plugins keeps rarely used,
# rarely audited decoders away from untrusted bytes.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM")
Image.init()  # register every plugin once, so the allow-list above resolves

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
# SFace and dlib work on 112 and 150 px chips; below 48 px no usable face fits in the image.
DEFAULT_MIN_SIDE = 48

ImageInput = bytes | bytearray | memoryview | str | Path | np.ndarray


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE


DEFAULT_LIMITS = DecodeLimits()


def decode(image: ImageInput, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode an image to a C-contiguous ``uint8`` array of shape (height, width, 3), RGB."""
    if isinstance(image, np.ndarray):
        return _check_size(_array_to_rgb(image), limits)
    if isinstance(image, str | Path):
        data = _read_file(Path(image), limits.max_bytes)
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    else:
        raise ImageDecodeError(f"cannot decode an object of type {type(image).__name__}")
    return _decode_bytes(data, limits)


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(
                f"{path.name} is {size:,} bytes; the limit is {max_bytes:,} bytes",
                bytes=size,
                limit=max_bytes,
            )
        with path.open("rb") as fh:
            # Read one byte more than allowed: a file that grew meanwhile is still refused.
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read {path}: {exc.strerror or exc}") from None
    return data


def _decode_bytes(data: bytes, limits: DecodeLimits) -> np.ndarray:
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"the image is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes",
            bytes=len(data),
            limit=limits.max_bytes,
        )
    if not data:
        raise ImageDecodeError("the image is empty (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise _too_many_pixels(None, limits.max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(
            "the data is not a readable image (supported: JPEG, PNG, WebP, BMP, GIF, TIFF, PGM)",
            cause=type(exc).__name__,
        ) from None
    with img:
        # The header gives the size; refuse before any pixel is decoded.
        width, height = img.size
        if width * height > limits.max_pixels:
            raise _too_many_pixels((width, height), limits.max_pixels)
        if min(width, height) < limits.min_side:
            raise _too_small((width, height), limits.min_side)
        try:
            img.load()
            img = ImageOps.exif_transpose(img) or img
        except Image.DecompressionBombError:
            raise _too_many_pixels((width, height), limits.max_pixels) from None
        except (OSError, ValueError, SyntaxError, EOFError, struct_error) as exc:
            raise ImageDecodeError(
                f"the {img.format or 'image'} data is corrupt or truncated",
                cause=type(exc).__name__,
            ) from None
        except MemoryError:
            raise ImageTooLarge("the image needs more memory than is available") from None
        return _check_size(_pil_to_rgb(img), limits)


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> ImageTooLarge:
    if size is None:
        return ImageTooLarge(f"the image has more pixels than the limit of {max_pixels:,}")
    w, h = size
    return ImageTooLarge(
        f"the image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,} pixels",
        pixels=w * h,
        limit=max_pixels,
    )


def _too_small(size: tuple[int, int], min_side: int) -> ImageTooSmall:
    w, h = size
    return ImageTooSmall(
        f"the image is {w}x{h} pixels; each side must be at least {min_side} pixels",
        width=w,
        height=h,
    )


def _check_size(rgb: np.ndarray, limits: DecodeLimits) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w * h > limits.max_pixels:
        raise _too_many_pixels((w, h), limits.max_pixels)
    if min(w, h) < limits.min_side:
        raise _too_small((w, h), limits.min_side)
    return rgb


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        return _flatten_alpha(np.asarray(img.convert("RGBA")))
    if mode.startswith("I") or mode == "F":
        return _array_to_rgb(np.asarray(img))
    if mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite over white: transparent pixels carry undefined colour values."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    rgb = (rgba[..., :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(rgb.astype(np.uint8))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = 1.0 if a.size and float(a.max()) <= 1.0 else 255.0
        return np.clip(a * (255.0 / top), 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        a = np.clip(a, 0, 65535)
        # 16-bit data (and 32-bit Pillow "I" images holding 16-bit values) keep their top byte.
        if a.size and int(a.max()) > 255:
            return (a.astype(np.uint32) >> 8).astype(np.uint8)
        return a.astype(np.uint8)
    raise ImageDecodeError(f"unsupported pixel type {a.dtype}")


def _array_to_rgb(a: np.ndarray) -> np.ndarray:
    """Normalise an array (grey, RGB, RGBA; 8/16-bit or float) to 8-bit RGB."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        g = _to_uint8(a)
        return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a8 = _to_uint8(a)
        if a.shape[2] == 4:
            return _flatten_alpha(a8)
        return np.ascontiguousarray(a8)
    raise ImageDecodeError(
        f"an image array must be HxW, HxWx3 (RGB) or HxWx4 (RGBA); got shape {a.shape}"
    )
