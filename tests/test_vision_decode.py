"""Every decode path: real edge-case files from the data, and synthetic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facegate.errors import ImageDecodeError, ImageTooLarge, ImageTooSmall
from facegate.vision.decode import DecodeLimits, decode


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _gradient(h: int = 64, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 3 % 256, y * 3 % 256, (x + y) % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize("name", ["corrupted.png", "empty.png", "truncated.jpg"])
def test_broken_files_raise_decode_error(shared_data, name):
    path = shared_data / "detection" / "images" / "decode" / name
    with pytest.raises(ImageDecodeError):
        decode(path)
    with pytest.raises(ImageDecodeError):
        decode(path.read_bytes())


def test_non_image_bytes_and_empty_input():
    with pytest.raises(ImageDecodeError):
        decode(b"%PDF-1.4 this is not an image at all" * 10)
    with pytest.raises(ImageDecodeError):
        decode(b"")
    with pytest.raises(ImageDecodeError):
        decode(12345)  # type: ignore[arg-type]


def test_missing_file_is_a_decode_error(tmp_path):
    with pytest.raises(ImageDecodeError):
        decode(tmp_path / "nope.jpg")


def test_too_many_bytes_refused_before_reading(tmp_path):
    data = _png(_gradient())
    limits = DecodeLimits(max_bytes=len(data) - 1)
    with pytest.raises(ImageTooLarge):
        decode(data, limits)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLarge):
        decode(path, limits)


def test_too_many_pixels_refused_from_the_header(shared_data, monkeypatch):
    # 36 MP photo: refused under a 20 MP limit without decoding the pixels.
    path = shared_data / "detection" / "images" / "compreface" / "001_A.jpg"
    loaded = []
    original = Image.Image.load

    def spy(self):
        loaded.append(True)
        return original(self)

    monkeypatch.setattr(Image.Image, "load", spy)
    with pytest.raises(ImageTooLarge) as err:
        decode(path, DecodeLimits(max_pixels=20_000_000))
    assert "pixels" in err.value.message
    assert not loaded


def test_36mp_accepted_under_default_limit_and_decoded_downscaled(shared_data):
    """The 36 MP photo is below the 40 MP default; only a tighter limit refuses it. It is
    decoded downscaled (JPEG draft mode) to at most the target pixel count, same aspect."""
    path = shared_data / "detection" / "images" / "compreface" / "001_A.jpg"
    with Image.open(path) as im:
        w, h = im.size
    rgb = decode(path)
    target = DecodeLimits().target_pixels
    assert target / 4 <= rgb.shape[0] * rgb.shape[1] <= target
    assert abs(rgb.shape[1] / rgb.shape[0] - w / h) < 0.01
    full = decode(path, DecodeLimits(target_pixels=50_000_000))
    assert full.shape[:2] == (h, w)


def test_tiny_image_too_small(shared_data):
    tiny = next((shared_data / "detection" / "images" / "coil20").glob("*.png"))
    with pytest.raises(ImageTooSmall):
        decode(tiny)
    with pytest.raises(ImageTooSmall):
        decode(np.zeros((20, 200, 3), np.uint8))


def test_webp_named_jpg_is_sniffed(shared_data):
    path = shared_data / "deepface" / "images" / "img47.jpg"
    assert path.read_bytes()[8:12] == b"WEBP"
    rgb = decode(path)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_format_variants_decode_alike(shared_data):
    folder = shared_data / "detection" / "images" / "decode"
    arrays = [decode(folder / f"einstein.{ext}") for ext in ("bmp", "gif", "jpeg", "png", "webp")]
    assert len({a.shape for a in arrays}) == 1
    ref = arrays[3].astype(np.float32)  # PNG is lossless
    for a in arrays:
        assert np.abs(a.astype(np.float32) - ref).mean() < 12  # lossy codecs, same picture


def test_exif_orientation_applied(shared_data):
    path = shared_data / "detection" / "images" / "exif" / "image_T1.jpg"
    with Image.open(path) as im:
        stored_w, stored_h = im.size
        assert im.getexif().get(0x0112) == 6
    rgb = decode(path)
    assert rgb.shape[:2] == (stored_w, stored_h)  # rotated by 90 degrees


def test_rgba_real_file_becomes_rgb(shared_data):
    path = shared_data / "detection" / "images" / "face_recognition" / "32bit.png"
    with Image.open(path) as im:
        assert im.mode == "RGBA"
    rgb = decode(path)
    assert rgb.shape[2] == 3 and rgb.dtype == np.uint8


def test_transparent_pixels_become_white():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = 200  # colour hidden under full transparency
    rgba[:32, :, 3] = 255
    rgb = decode(_png(rgba, "RGBA"))
    assert (rgb[:32, :, 0] == 200).all() and (rgb[:32, :, 1] == 0).all()
    assert (rgb[32:] == 255).all()


def test_grey_palette_and_16bit():
    grey = (_gradient()[..., 0]).copy()
    rgb = decode(_png(grey, "L"))
    assert rgb.shape == (*grey.shape, 3) and (rgb[..., 0] == grey).all()

    pal = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE)
    buf = io.BytesIO()
    pal.save(buf, format="GIF")
    assert decode(buf.getvalue()).shape == (64, 80, 3)

    sixteen = (grey.astype(np.uint16) * 257).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(sixteen).save(buf, format="PNG")
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.mode.startswith("I")
    rgb16 = decode(buf.getvalue())
    assert rgb16.dtype == np.uint8 and (rgb16[..., 0] == grey).all()


def test_array_inputs():
    g = _gradient()
    assert (decode(g) == g).all()
    assert decode(g[..., 0]).shape == (64, 80, 3)
    assert decode(g.astype(np.uint16) * 257).dtype == np.uint8
    with pytest.raises(ImageDecodeError):
        decode(np.zeros((64, 64, 2), np.uint8))


def test_grey_real_images(shared_data):
    orl = decode(next((shared_data / "orl_att" / "images" / "s1").glob("*.pgm")))
    yale = decode(next((shared_data / "yalefaces" / "images" / "subject01").glob("*.gif")))
    for a in (orl, yale):
        assert a.ndim == 3 and a.shape[2] == 3
        assert (a[..., 0] == a[..., 1]).all()


# --- decompression bombs (issue 13 item 3) -------------------------------------------------


def png16(w: int, h: int) -> bytes:
    """A 16-bit RGB PNG of ``w`` x ``h`` black pixels: a few hundred KB that inflate to
    w * h * 6 bytes (made with zlib directly: Pillow cannot write 16-bit RGB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    c = zlib.compressobj(9)
    rows = (b"\x00" + b"\x00" * (w * 6)) * 100
    body = [c.compress(rows) for _ in range(h // 100)]
    body.append(c.compress((b"\x00" + b"\x00" * (w * 6)) * (h % 100)))
    body.append(c.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(body))
        + chunk(b"IEND", b"")
    )


def _spy_load(monkeypatch) -> list[bool]:
    loaded: list[bool] = []
    original = Image.Image.load

    def spy(self):
        loaded.append(True)
        return original(self)

    monkeypatch.setattr(Image.Image, "load", spy)
    return loaded


def test_16bit_png_bomb_refused_from_the_header(monkeypatch):
    """6000x6600 16-bit: under the 40 MP limit, but ~240 MB to inflate and more to convert.
    PNG has no downscaled decoding, so it is refused before a pixel is inflated."""
    from facegate.vision.decode import decode_units

    bomb = png16(6000, 6600)
    assert len(bomb) < 400_000
    loaded = _spy_load(monkeypatch)
    with pytest.raises(ImageTooLarge) as err:
        decode(bomb)
    assert "16-bit" in err.value.message and "JPEG" in err.value.message
    with pytest.raises(ImageTooLarge):
        decode_units(bomb)
    assert not loaded
    # A small 16-bit PNG still decodes (top byte kept).
    assert decode(png16(200, 150)).shape == (150, 200, 3)


def test_large_lossless_image_is_reduced_after_decoding():
    arr = np.zeros((3000, 2000, 3), np.uint8)
    arr[:, :, 1] = 128
    rgb = decode(_png(arr), DecodeLimits(target_pixels=1_000_000))
    assert rgb.shape[0] * rgb.shape[1] <= 1_000_000 and (rgb[..., 1] == 128).all()
    assert abs(rgb.shape[0] / rgb.shape[1] - 1.5) < 0.01


def test_request_pixels_are_bounded_from_the_headers(monkeypatch):
    from facegate.vision.decode import check_request_pixels

    four_mp = _png(np.zeros((2000, 2000, 3), np.uint8))
    loaded = _spy_load(monkeypatch)
    check_request_pixels([four_mp] * 2, 8_000_000)
    with pytest.raises(ImageTooLarge):
        check_request_pixels([four_mp] * 3, 8_000_000)
    assert not loaded


def test_pixel_budget_bounds_concurrent_decodes():
    """Decodes in many threads never hold more pixels at once than the budget; a decode
    that cannot get its share in time is refused as busy (503), not queued for ever."""
    import threading

    from facegate.errors import Busy
    from facegate.vision.decode import PixelBudget

    budget = PixelBudget(10, wait_s=5.0)
    inside = []
    lock = threading.Lock()
    current = [0]

    def work(units: int) -> None:
        with budget.take(units):
            with lock:
                current[0] += units
                inside.append(current[0])
            threading.Event().wait(0.02)
            with lock:
                current[0] -= units

    threads = [threading.Thread(target=work, args=(4,)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(inside) <= 10 and budget.peak <= 10 and budget.in_use == 0
    short = PixelBudget(10, wait_s=0.05)
    with short.take(8), pytest.raises(Busy), short.take(4):
        pass
    assert short.in_use == 0
