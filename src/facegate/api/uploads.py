"""Reading a decide request: limits on the byte stream before anything is decoded.

Frames are kept in memory only (never spooled to a temporary file) and dropped after the
decision (STD-41819-04: images are deleted as soon as verification is done).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from facegate.config import Settings
from facegate.errors import ImageTooLarge, InvalidInput, PayloadTooLarge, UnsupportedMediaType

CREDENTIAL_FIELDS = ("card", "pin", "qr", "person", "challenge")
_MAX_FIELD_BYTES = 1024
_RAW_TYPES = {b"application/octet-stream"}


@dataclass
class DecideInput:
    """What a gate sent: zero or more frames and at most one of each credential."""

    frames: list[bytes] = field(default_factory=list)
    card: str | None = None
    pin: str | None = None
    qr: str | None = None
    person: str | None = None  # pseudonym, only to say whose PIN this is
    challenge: str | None = None  # the nonce of an active liveness challenge (issue 14)

    @property
    def has_credential(self) -> bool:
        return bool(self.card or self.pin or self.qr)


def body_limit(settings: Settings) -> int:
    return settings.max_frame_bytes * settings.max_burst_frames + 64 * 1024


async def read_decide_input(request: Request, settings: Settings) -> DecideInput:
    """Parse multipart, JSON or a raw image body within the configured limits."""
    limit = body_limit(settings)
    _check_declared(request, limit)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    ctype = ctype.lower()
    if ctype == b"multipart/form-data":
        return await _read_multipart(request, params.get(b"boundary"), settings, limit)
    if ctype == b"application/json":
        return _from_json(await _read_capped(request, 16 * 1024))
    if ctype == b"application/x-www-form-urlencoded":
        return _from_form(await _read_capped(request, 16 * 1024))
    if ctype.startswith(b"image/") or ctype in _RAW_TYPES:
        frame = await _read_capped(request, settings.max_frame_bytes, image=True)
        if not frame:
            raise InvalidInput("the request body is empty: send a camera frame or a credential")
        return DecideInput(frames=[frame])
    if not ctype:
        raise UnsupportedMediaType(
            "send a frame as multipart/form-data (field `frame`) or as a raw image body, "
            "or a credential as multipart or JSON (`card`, `pin`, `qr`)"
        )
    raise UnsupportedMediaType(f"content type {ctype.decode('latin-1')!r} is not accepted here")


async def _read_capped(request: Request, cap: int, image: bool = False) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            if image:
                raise ImageTooLarge(f"a frame may be at most {cap} bytes")
            raise PayloadTooLarge(f"the request body is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _from_json(raw: bytes) -> DecideInput:
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the JSON body must be an object with `card`, `pin` or `qr`")
    out = DecideInput()
    for key, value in data.items():
        if key not in CREDENTIAL_FIELDS:
            raise InvalidInput(f"unknown field {key!r}; expected one of {CREDENTIAL_FIELDS}")
        if value is None:
            continue
        setattr(out, key, _field_value(key, value))
    return out


def _from_form(raw: bytes) -> DecideInput:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form body is not valid UTF-8") from None
    out = DecideInput()
    for key, value in pairs:
        if key not in CREDENTIAL_FIELDS:
            raise InvalidInput(f"unknown field {key!r}; expected one of {CREDENTIAL_FIELDS}")
        if getattr(out, key) is not None:
            raise InvalidInput(f"`{key}` was sent twice")
        setattr(out, key, _field_value(key, value))
    return out


def _field_value(key: str, value: object) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"`{key}` is not valid UTF-8 text", zh="表单内容不是有效的文字，请重新填写"
            ) from None
    if not isinstance(value, str):
        raise InvalidInput(f"`{key}` must be a string", zh="表单内容无效，请重新填写")
    value = value.strip()
    if not value or len(value) > 256 or not value.isprintable():
        raise InvalidInput(
            f"`{key}` must be 1-256 printable characters",
            zh="表单内容须为 1 至 256 个可显示的字符，请重新填写",
        )
    return value


MAX_ENROLL_IMAGES = 5


async def read_images(request: Request, settings: Settings) -> list[bytes]:
    """Enrollment photos: multipart field ``image``, 1-5 files, within the frame limit each."""
    limit = settings.max_frame_bytes * MAX_ENROLL_IMAGES + 64 * 1024
    _check_declared(request, limit)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype.lower() != b"multipart/form-data":
        raise UnsupportedMediaType("send the photos as multipart/form-data, field `image`")
    files, _ = await _parse_multipart(
        request,
        params.get(b"boundary"),
        "image",
        MAX_ENROLL_IMAGES,
        (),
        settings.max_frame_bytes,
        limit,
    )
    if not files:
        raise InvalidInput("send at least one photo in the field `image`")
    return files


async def read_photo_form(
    request: Request, settings: Settings, file_field: str = "photo"
) -> tuple[bytes, dict[str, str]]:
    """A web form with one photo and a CSRF token, parsed in memory within the frame limit.

    Starlette's own form parser spools a file over 1 MB to a temporary file on disk; a face
    photo must never touch the disk (principle 3, STD-41819-04), so pages use this instead.
    """
    limit = settings.max_frame_bytes + 64 * 1024
    _check_declared(request, limit)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype.lower() != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"send the photo as multipart/form-data, field `{file_field}`", zh="请选择一张照片"
        )
    try:
        files, fields = await _parse_multipart(
            request,
            params.get(b"boundary"),
            file_field,
            1,
            ("csrf",),
            settings.max_frame_bytes,
            limit,
        )
    except InvalidInput as exc:  # a browser sends an empty part when no file was chosen
        if exc.message != f"an empty `{file_field}` was sent":
            raise
        files, fields = [], {}
    if not files:
        raise InvalidInput("choose a photo", zh="请选择一张照片")
    return files[0], fields


async def read_file_form(
    request: Request, file_cap: int, text_fields: tuple[str, ...] = ("csrf",)
) -> tuple[bytes, dict[str, str]]:
    """A web form with one file (field ``file``, e.g. a CSV of residents) and some text
    fields, parsed in memory within ``file_cap``: personal data never goes to a temporary
    file. An empty upload gives ``b""``."""
    limit = file_cap + 64 * 1024
    mb = max(1, file_cap // (1024 * 1024))
    too_large = InvalidInput(f"the file is larger than {mb} MB", zh=f"文件超过 {mb} MB")
    try:
        _check_declared(request, limit)
    except PayloadTooLarge:
        raise too_large from None
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype.lower() != b"multipart/form-data":
        raise InvalidInput("choose a file", zh="请选择文件")
    try:
        files, fields = await _parse_multipart(
            request, params.get(b"boundary"), "file", 1, text_fields, file_cap, limit
        )
    except (ImageTooLarge, PayloadTooLarge):
        raise too_large from None
    except InvalidInput as exc:
        if exc.message == "an empty `file` was sent":
            raise InvalidInput("the file is empty", zh="文件是空的") from None
        raise
    return (bytes(files[0]) if files else b""), fields


def camera_burst_limit(settings: Settings) -> int:
    """The most bytes a camera enrollment page may send: its frames and the nonce."""
    return settings.max_frame_bytes * MAX_ENROLL_IMAGES + 64 * 1024


async def read_camera_burst(request: Request, settings: Settings) -> tuple[list[bytes], str]:
    """The frames of an enrollment page's liveness challenge (multipart, field ``frame``, in
    time order, at most 5) and its nonce (field ``challenge``), parsed in memory within the
    frame limit: a frame never touches the disk (principle 3, STD-41819-04)."""
    limit = camera_burst_limit(settings)
    _check_declared(request, limit)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype.lower() != b"multipart/form-data":
        raise UnsupportedMediaType(
            "send the camera frames as multipart/form-data, fields `frame` and `challenge`",
            zh="没有收到摄像头画面，请再试一次",
        )
    files, fields = await _parse_multipart(
        request,
        params.get(b"boundary"),
        "frame",
        MAX_ENROLL_IMAGES,
        ("challenge",),
        settings.max_frame_bytes,
        limit,
    )
    if not files:
        raise InvalidInput(
            "send the camera frames in the field `frame`", zh="没有收到摄像头画面，请再试一次"
        )
    return files, fields.get("challenge", "")


def _size_words(n: int) -> str:
    """A byte count as a person reads it: "12 MB", "300 KB"."""
    if n >= 1024 * 1024:
        return f"{round(n / (1024 * 1024), 1):g} MB"
    return f"{max(1, round(n / 1024))} KB"


def _check_declared(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise InvalidInput(
            "Content-Length is not a number", zh="上传的内容无效，请重新提交"
        ) from None
    if size > limit:
        raise PayloadTooLarge(
            f"the request body is {size} bytes; the limit is {limit}",
            zh=f"上传的内容太大（{_size_words(size)}），上限是 {_size_words(limit)}",
        )


async def _read_multipart(
    request: Request, boundary: bytes | None, settings: Settings, limit: int
) -> DecideInput:
    frames, fields = await _parse_multipart(
        request,
        boundary,
        "frame",
        settings.max_burst_frames,
        CREDENTIAL_FIELDS,
        settings.max_frame_bytes,
        limit,
    )
    out = DecideInput(frames=frames)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


async def _parse_multipart(
    request: Request,
    boundary: bytes | None,
    file_field: str,
    max_files: int,
    text_fields: tuple[str, ...],
    file_cap: int,
    limit: int,
) -> tuple[list[bytes], dict[str, str]]:
    """Stream-parse a multipart body in memory with a cap per part and in total."""
    if not boundary:
        raise InvalidInput("multipart body without a boundary", zh="上传的表单无效，请重新提交")
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_field = bytearray()
    header_value = bytearray()
    state: dict[str, object] = {}

    def on_part_begin() -> None:
        if len(parts) >= max_files + len(text_fields):
            raise InvalidInput(
                "too many parts in the multipart body", zh="上传的文件太多，请只选择需要的文件"
            )
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, opts = parse_options_header(parts[-1][0].get(b"content-disposition", b""))
        is_file = opts.get(b"name", b"").decode("latin-1") == file_field
        state["cap"] = file_cap if is_file else _MAX_FIELD_BYTES
        state["is_file"] = is_file

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buf = parts[-1][1]
        if len(buf) + (end - start) > state["cap"]:  # type: ignore[operator]
            if state["is_file"]:
                raise ImageTooLarge(
                    f"an image may be at most {file_cap} bytes",
                    zh=f"照片太大：每张照片不能超过 {_size_words(file_cap)}",
                )
            raise InvalidInput("a form field is longer than 1 KiB", zh="表单中有一项内容太长")
        buf.extend(data[start:end])

    parser = MultipartParser(
        boundary,
        callbacks={  # type: ignore[arg-type]
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(
                    f"the request body is larger than {limit} bytes",
                    zh=f"上传的内容超过 {_size_words(limit)}",
                )
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise InvalidInput(
            "the multipart body is malformed", zh="上传的表单不完整，请重新提交"
        ) from None
    files: list[bytes] = []
    fields: dict[str, str] = {}
    for headers, data in parts:
        _, opts = parse_options_header(headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("latin-1")
        if name == file_field:
            if len(files) >= max_files:
                raise InvalidInput(
                    f"at most {max_files} `{file_field}` parts per request",
                    zh=f"一次最多上传 {max_files} 个文件",
                )
            if not data:
                raise InvalidInput(f"an empty `{file_field}` was sent", zh="所选文件是空的")
            files.append(bytes(data))
        elif name in text_fields:
            if name in fields:
                raise InvalidInput(f"`{name}` was sent twice", zh="表单中有一项重复提交")
            fields[name] = _field_value(name, bytes(data))
        else:
            expected = ", ".join((file_field, *text_fields))
            raise InvalidInput(
                f"unknown form field {name!r}; expected one of {expected}",
                zh="表单中有无法识别的内容，请刷新页面后重试",
            )
    return files, fields
