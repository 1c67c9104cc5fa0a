"""Safe image decoding: bytes, a path or an array in, 8-bit RGB ``numpy`` array out.

The format is sniffed from the content (never the file name), EXIF orientation is applied,
and grey, RGBA, palette and 16-bit images become 8-bit RGB. Limits are enforced before any
expensive work: the byte size before reading, the pixel count from the header before the
pixels are decoded, so a hostile file cannot exhaust memory. Every failure is a typed error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error  # raised by some Pillow plugins on malformed data

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegate.errors import Busy, ImageDecodeError, ImageTooLarge, ImageTooSmall

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
    # Larger images are decoded downscaled to about this many pixels (JPEG: in the decoder,
    # at 1/2, 1/4 or 1/8 scale; other formats: reduced right after decoding).
    target_pixels: int = 4_000_000
    # Formats with no downscaled decoding: refused from the header above this many pixel
    # units (16-bit samples count twice), before a byte of pixel data is inflated.
    max_full_pixels: int = 16_000_000


DEFAULT_LIMITS = DecodeLimits()


class PixelBudget:
    """Decoded pixels in flight across the whole process (issue 13 item 3).

    Every decode takes its pixel units from the budget before inflating anything and gives
    them back when done; when the budget is spent a decode waits up to ``wait_s`` seconds,
    then is refused as busy (503), so concurrent hostile uploads cannot add up past it.
    """

    def __init__(self, total: int, wait_s: float = 5.0) -> None:
        self.total = int(total)
        self.wait_s = float(wait_s)
        self.in_use = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextmanager
    def take(self, units: int) -> Iterator[None]:
        units = min(int(units), self.total)  # one image within every limit always fits alone
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self.in_use + units > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Busy(
                        "the server is decoding other large images; retry in a moment",
                        retry_after=1,
                    )
                self._cond.wait(left)
            self.in_use += units
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= units
                self._cond.notify_all()
            if units >= _TRIM_AFTER_UNITS:
                release_free_memory()


_TRIM_AFTER_UNITS = 2_000_000
_budget = PixelBudget(120_000_000)


def set_pixel_budget(total: int, wait_s: float = 5.0) -> PixelBudget:
    """Set the process-wide decode budget (the gate server does so from its Settings)."""
    global _budget
    if _budget.total != total or _budget.wait_s != wait_s:
        _budget = PixelBudget(total, wait_s)
    return _budget


def pixel_budget() -> PixelBudget:
    return _budget


_libc = None


def release_free_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``; no-op elsewhere).

    Decoding a large image allocates and frees hundreds of MB; without a trim glibc may keep
    it in its arenas, so a long hostile session would ratchet the process's memory up.
    """
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)


def tune_malloc(arena_max: int = 2, mmap_threshold: int = 1 << 20) -> bool:
    """Fewer glibc arenas and a fixed mmap threshold, so large buffers return on free.

    glibc raises its mmap threshold after each large free (up to 32 MB), after which image
    buffers come from arenas that rarely shrink; fixing it keeps the server's memory flat
    under a long series of large uploads. Returns False where ``mallopt`` is unavailable.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    m_arena_max, m_mmap_threshold = -8, -3
    ok = mallopt(m_arena_max, int(arena_max)) == 1
    return mallopt(m_mmap_threshold, int(mmap_threshold)) == 1 and ok


def decode_units(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> int:
    """The pixel units decoding ``data`` would take (after any downscaled decoding), from
    the header alone; raises the error ``decode`` would for an image over a limit."""
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image is larger than {limits.max_bytes:,} bytes")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
            w, h = img.size
            if w * h > limits.max_pixels:
                raise _too_many_pixels((w, h), limits.max_pixels)
            return _plan_decode(img, limits)
    except Image.DecompressionBombError:
        raise ImageTooLarge("the image has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct_error):
        raise ImageDecodeError("the data is not a readable image") from None


def check_request_pixels(
    images: Iterable[bytes], limit: int, limits: DecodeLimits = DEFAULT_LIMITS
) -> None:
    """All images of one request together decode to at most ``limit`` pixel units.

    Read from the headers before any image is decoded (issue 13 item 3).
    """
    total = 0
    for data in images:
        total += decode_units(data, limits)
        if total > limit:
            raise ImageTooLarge(
                f"the images of this request would decode to more than {limit:,} pixels "
                "together; send fewer or smaller images",
                limit=limit,
            )


def _sample_factor(img: Image.Image) -> int:
    """2 for 16-bit samples (decoded at double width), else 1."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return 2
    for tile in getattr(img, "tile", None) or ():
        args = tile.args if hasattr(tile, "args") else tile[3]
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and ";16" in raw:
            return 2
    return 1


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
        units = _plan_decode(img, limits)
        try:
            with _budget.take(units):
                img.load()
                img = ImageOps.exif_transpose(img) or img
                img = _reduce(img, limits)
                return _check_size(_pil_to_rgb(img), limits)
        except Image.DecompressionBombError:
            raise _too_many_pixels((width, height), limits.max_pixels) from None
        except (OSError, ValueError, SyntaxError, EOFError, struct_error) as exc:
            raise ImageDecodeError(
                f"the {img.format or 'image'} data is corrupt or truncated",
                cause=type(exc).__name__,
            ) from None
        except MemoryError:
            raise ImageTooLarge("the image needs more memory than is available") from None


def _plan_decode(img: Image.Image, limits: DecodeLimits) -> int:
    """Pick a downscaled decode where the format allows; the pixel units it will take.

    JPEG (draft mode): decoded at 1/2, 1/4 or 1/8 scale, to between a quarter of and the
    target pixel count. Others decode whole: refused here when that would exceed
    ``max_full_pixels`` (issue 13 item 3: 16-bit 6000x6600 PNGs are refused from the header).
    """
    w, h = img.size
    factor = _sample_factor(img)
    if img.format == "JPEG" and w * h > limits.target_pixels:
        s = math.sqrt(limits.target_pixels / (w * h)) / 2
        img.draft("RGB", (max(1, int(w * s)), max(1, int(h * s))))
        w, h = img.size
    units = w * h * factor
    if img.format != "JPEG" and units > limits.max_full_pixels:
        raise ImageTooLarge(
            f"a {img.format or 'non-JPEG'} image of {w}x{h}"
            f"{' with 16-bit samples' if factor > 1 else ''} is too large to decode; "
            f"send a JPEG or an image of at most {limits.max_full_pixels // factor:,} pixels",
            pixels=w * h,
            limit=limits.max_full_pixels,
        )
    return units


def _reduce(img: Image.Image, limits: DecodeLimits) -> Image.Image:
    """An image still above the target after decoding is reduced by a whole factor."""
    w, h = img.size
    if w * h <= limits.target_pixels:
        return img
    k = math.ceil(math.sqrt(w * h / limits.target_pixels))
    if min(w, h) // k < limits.min_side or img.mode.startswith("I") or img.mode == "F":
        return img  # (16-bit and float images within max_full_pixels are below the target)
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    return img.reduce(k)


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
