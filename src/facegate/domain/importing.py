"""Bulk import of residents from a property-management system's CSV or Excel export.

Every row is validated before anything is written; the import is one transaction and one
audited operation (each person it adds also gets its own ``person_add`` entry, tagged with the
import id, so the audit log speaks for every person). It never imports photos or consent:
consent is each person's own act (CAC-FR-06a, PIPL-14).
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate import audit
from facegate.domain.common import PURPOSE_ACCESS, get_site, run, utcnow
from facegate.domain.credentials import _new_credential, hash_pin
from facegate.domain.identities import FieldKeys
from facegate.domain.people import add_person_in_tx
from facegate.errors import FacegateError, InvalidInput
from facegate.store.crypto import Keyring
from facegate.store.models import CATEGORIES, Credential, new_id

# The most rows one import takes; a larger compound imports in several files.
MAX_ROWS = 20_000
MAX_FILE_BYTES = 10 * 1024 * 1024

# Column names as property-management systems export them, in English and Chinese.
COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "姓名", "住户姓名", "业主姓名", "名字"),
    "unit": ("unit", "room", "apartment", "房号", "房间号", "单元", "门牌号", "房屋"),
    "category": ("category", "type", "类别", "人员类型", "身份", "住户类型"),
    "contact": ("contact", "phone", "mobile", "电话", "手机", "手机号", "联系电话"),
    "card": ("card", "card number", "card_number", "卡号", "门禁卡号", "ic卡号"),
    "pin": ("pin", "密码", "门禁密码"),
    "move_in": ("move_in", "move-in", "move in", "入住日期", "入住时间", "开始日期"),
    "move_out": (
        "move_out",
        "move-out",
        "move out",
        "搬离日期",
        "退房日期",
        "到期日期",
        "结束日期",
        "合同到期",
    ),
}
CATEGORY_WORDS: dict[str, str] = {
    **{c: c for c in CATEGORIES},
    "owner": "resident",
    "业主": "resident",
    "住户": "resident",
    "居民": "resident",
    "家属": "resident",
    "租户": "tenant",
    "租客": "tenant",
    "住客": "guest",
    "客人": "guest",
    "宾客": "guest",
    "员工": "staff",
    "职工": "staff",
    "工作人员": "staff",
    "访客": "visitor",
}


# The columns as a Chinese reader knows them, for row errors shown in zh-CN.
COLUMN_ZH: dict[str, str] = {
    "name": "姓名",
    "unit": "房号",
    "category": "类别",
    "contact": "电话",
    "card": "卡号",
    "pin": "密码",
    "move_in": "入住日期",
    "move_out": "搬离日期",
}


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line in the file, the header being row 1
    column: str
    message: str
    zh: str = ""  # the same problem in Chinese, for zh-CN pages (issue 16 item 7)

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"

    def text(self, lang: str = "en") -> str:
        """The problem with its row and column, in ``lang`` (zh-CN or en)."""
        if lang == "zh-CN" and self.zh:
            return f"第 {self.row} 行，{COLUMN_ZH.get(self.column, self.column)}：{self.zh}"
        return str(self)


@dataclass(frozen=True)
class ImportRow:
    row: int
    name: str
    unit: str
    category: str
    contact: str = ""
    card: str = ""
    pin: str = ""
    move_in: date | None = None
    move_out: date | None = None


@dataclass
class ImportResult:
    import_id: str
    rows: int
    valid: int
    errors: list[RowError] = field(default_factory=list)
    person_ids: list[str] = field(default_factory=list)
    written: bool = False
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "rows": self.rows,
            "valid": self.valid,
            "imported": len(self.person_ids),
            "written": self.written,
            "dry_run": self.dry_run,
            "person_ids": self.person_ids,
            "errors": [e.__dict__ for e in self.errors],
        }


class ImportRefused(InvalidInput):
    """The file has rows that cannot be imported; nothing was written."""

    code = "import_invalid_rows"

    def __init__(self, result: ImportResult) -> None:
        shown = "; ".join(str(e) for e in result.errors[:20])
        shown_zh = "；".join(e.text("zh-CN") for e in result.errors[:20])
        more = len(result.errors) - 20
        super().__init__(
            f"{len(result.errors)} problem(s) in {result.rows} row(s); nothing was imported. "
            f"{shown}{f'; and {more} more' if more > 0 else ''}. Fix the file, or import the "
            "valid rows only with --skip-invalid.",
            zh=f"共 {result.rows} 行，发现 {len(result.errors)} 处问题，未导入任何人员。"
            f"{shown_zh}{f'；另有 {more} 处' if more > 0 else ''}。请修改文件后重新导入，"
            "或只导入无误的行。",
            errors=[e.__dict__ for e in result.errors[:200]],
        )
        self.result = result


# --- reading the file --------------------------------------------------------------------------


def read_table(data: bytes, filename: str) -> list[dict[str, Any]]:
    """The rows of a CSV (UTF-8, UTF-8 with BOM or GB18030, as Excel in China saves it) or an
    Excel workbook (.xlsx, first sheet), keyed by our column names."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            zh=f"文件超过 {MAX_FILE_BYTES // (1024 * 1024)} MB",
        )
    if filename.lower().endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        raw_rows = _xlsx_rows(data)
    elif filename.lower().endswith(".xls"):
        raise InvalidInput(
            "old .xls workbooks are not read: save the sheet as .xlsx or .csv",
            zh="不能读取旧版 .xls 工作簿：请将表格另存为 .xlsx 或 .csv",
        )
    else:
        raw_rows = _csv_rows(data)
    if not raw_rows:
        raise InvalidInput(
            "the file is empty: the first row must name the columns",
            zh="文件是空的：第一行须写明各列的列名",
        )
    header = [str(h or "").strip().lower() for h in raw_rows[0]]
    keys: list[str | None] = []
    for h in header:
        key = next((k for k, names in COLUMNS.items() if h in names), None)
        keys.append(key)
    for required in ("name", "category"):
        if required not in keys:
            raise InvalidInput(
                f"no {required!r} column: the first row must name the columns "
                f"(accepted: {', '.join(COLUMNS[required])})",
                zh=f"没有“{COLUMN_ZH[required]}”列：第一行须写明各列的列名"
                f"（可用：{'、'.join(COLUMNS[required])}）",
            )
    if len(raw_rows) - 1 > MAX_ROWS:
        raise InvalidInput(
            f"at most {MAX_ROWS} rows per import; split the file",
            zh=f"每次最多导入 {MAX_ROWS} 行：请把文件拆分后分批导入",
        )
    out = []
    for values in raw_rows[1:]:
        if all(v is None or str(v).strip() == "" for v in values):
            out.append({})  # kept so that row numbers stay those of the file
            continue
        out.append({k: v for k, v in zip(keys, values, strict=False) if k is not None})
    return out


def _csv_rows(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise InvalidInput(
            "the file is neither UTF-8 nor GB18030 text",
            zh="文件既不是 UTF-8 也不是 GB18030 编码的文本",
        )
    if "\x00" in text:
        raise InvalidInput(
            "this is not a CSV text file; save it as .csv or .xlsx",
            zh="这不是 CSV 文本文件：请另存为 .csv 或 .xlsx",
        )
    dialect: Any = csv.excel
    with contextlib.suppress(csv.Error):
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    return [row for row in csv.reader(io.StringIO(text), dialect)]


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise InvalidInput(
            "reading .xlsx needs openpyxl: pip install openpyxl",
            zh="读取 .xlsx 需要安装 openpyxl：pip install openpyxl",
        ) from exc
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any malformed workbook is the user's file
        raise InvalidInput(
            f"this is not a readable .xlsx workbook ({exc.__class__.__name__})",
            zh="无法读取这个 .xlsx 工作簿：文件可能已损坏，或不是 Excel 文件",
        ) from None
    try:
        ws = wb.worksheets[0]
        rows = []
        for row in ws.iter_rows(values_only=True):
            rows.append(list(row))
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        wb.close()


# --- validating the rows -----------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel gives card numbers as floats
    return str(value).strip()


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value).replace("/", "-").replace(".", "-")
    for suffix in ("日",):
        text = text.replace(suffix, "")
    text = text.replace("年", "-").replace("月", "-")
    parts = text.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    raise ValueError(text)


def validate_rows(raw: list[dict[str, Any]]) -> tuple[list[ImportRow], list[RowError]]:
    """Every row checked on its own and against the others (duplicate cards)."""
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    cards: dict[str, int] = {}
    for i, r in enumerate(raw, start=2):
        if not r:
            continue
        errs: list[RowError] = []
        name = _text(r.get("name"))
        if not name:
            errs.append(RowError(i, "name", "the name is empty", "姓名为空"))
        elif len(name) > 200:
            errs.append(
                RowError(i, "name", "the name is longer than 200 characters", "姓名超过 200 个字符")
            )
        word = _text(r.get("category")).lower()
        category = CATEGORY_WORDS.get(word, "")
        if not category:
            errs.append(
                RowError(
                    i,
                    "category",
                    f"{word or '(empty)'!r} is not a category; use one of "
                    f"{', '.join(CATEGORIES)} (or 业主, 租户, 住客, 员工, 访客)",
                    (f"“{word}”不是可用的类别" if word else "类别为空")
                    + "；请填写业主、租户、住客、员工或访客",
                )
            )
        unit = _text(r.get("unit"))
        if len(unit) > 100:
            errs.append(
                RowError(i, "unit", "the unit is longer than 100 characters", "房号超过 100 个字符")
            )
        contact = _text(r.get("contact"))
        if len(contact) > 200:
            errs.append(
                RowError(
                    i, "contact", "the contact is longer than 200 characters", "电话超过 200 个字符"
                )
            )
        card = _text(r.get("card"))
        if card:
            if len(card) > 100:
                errs.append(
                    RowError(
                        i,
                        "card",
                        "the card number is longer than 100 characters",
                        "卡号超过 100 个字符",
                    )
                )
            elif card in cards:
                errs.append(
                    RowError(
                        i,
                        "card",
                        f"card {card} is also on row {cards[card]}",
                        f"卡号 {card} 与第 {cards[card]} 行重复",
                    )
                )
            else:
                cards[card] = i
        pin = _text(r.get("pin"))
        if pin and not (pin.isdigit() and 4 <= len(pin) <= 12):
            errs.append(RowError(i, "pin", "a PIN is 4 to 12 digits", "密码须为 4 至 12 位数字"))
        dates: dict[str, date | None] = {}
        for col in ("move_in", "move_out"):
            value = r.get(col)
            dates[col] = None
            if _text(value):
                try:
                    dates[col] = _date(value)
                except ValueError:
                    errs.append(
                        RowError(
                            i,
                            col,
                            f"{_text(value)!r} is not a date; write it as 2027-06-30",
                            f"“{_text(value)}”不是日期；请写成 2027-06-30 这样的格式",
                        )
                    )
        if dates["move_in"] and dates["move_out"] and dates["move_out"] < dates["move_in"]:
            errs.append(
                RowError(
                    i,
                    "move_out",
                    "the move-out date is before the move-in date",
                    "搬离日期早于入住日期",
                )
            )
        if category == "visitor" and (card or pin):
            errs.append(
                RowError(
                    i,
                    "category",
                    "visitors get a pass at the desk, not a card or PIN",
                    "访客在前台领取通行码，不能导入门禁卡或密码",
                )
            )
        if errs:
            errors.extend(errs)
            continue
        rows.append(
            ImportRow(
                row=i,
                name=name,
                unit=unit,
                category=category,
                contact=contact,
                card=card,
                pin=pin,
                move_in=dates["move_in"],
                move_out=dates["move_out"],
            )
        )
    return rows, errors


def _day_start(d: date | None) -> datetime | None:
    return datetime.combine(d, time.min, tzinfo=UTC) if d else None


def _day_end(d: date | None) -> datetime | None:
    return datetime.combine(d, time.max, tzinfo=UTC).replace(microsecond=0) if d else None


def import_people(
    session: Session,
    raw: list[dict[str, Any]],
    *,
    actor: str,
    site_id: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    keyring: Keyring | None = None,
) -> ImportResult:
    """Validate every row, then add all the valid people in one transaction, or none.

    Without ``skip_invalid`` one bad row refuses the whole file (ImportRefused lists every
    problem by row). Cards already in use at the site are problems of their row. Names,
    contacts and units are sealed with ``keyring`` (the site key, issue 13 item 15)."""
    import_id = new_id("imp")
    rows, errors = validate_rows(raw)
    site = get_site(session, site_id)
    in_use = set(
        session.execute(
            select(Credential.identifier).where(
                Credential.site_id == site.id,
                Credential.kind == "card",
                Credential.revoked_at.is_(None),
                Credential.identifier.in_([r.card for r in rows if r.card] or [""]),
            )
        ).scalars()
    )
    clean = []
    for r in rows:
        if r.card in in_use:
            errors.append(
                RowError(
                    r.row,
                    "card",
                    f"card {r.card} is already in use at this site",
                    f"卡号 {r.card} 已在本场所使用",
                )
            )
        else:
            clean.append(r)
    errors.sort(key=lambda e: e.row)
    result = ImportResult(
        import_id=import_id,
        rows=sum(1 for r in raw if r),
        valid=len(clean),
        errors=errors,
        dry_run=dry_run,
    )
    if errors and not skip_invalid:
        raise ImportRefused(result)
    if dry_run or not clean:
        return result

    def work() -> ImportResult:
        tag = {"import_id": import_id}
        now = utcnow()
        fields = FieldKeys(session, keyring) if keyring is not None else None  # once for all
        for r in clean:
            person = add_person_in_tx(
                session,
                site,
                keyring=fields,
                actor=actor,
                category=r.category,
                name=r.name,
                contact=r.contact,
                unit=r.unit,
                relationship_ends_at=_day_end(r.move_out),
                details=tag,
            )
            valid_from = _day_start(r.move_in)
            if valid_from is not None and valid_from <= now:
                valid_from = None
            for kind, identifier, secret in (
                ("card", r.card, None),
                ("pin", r.unit or None, hash_pin(r.pin) if r.pin else None),
            ):
                if (kind == "card" and not r.card) or (kind == "pin" and not r.pin):
                    continue
                _new_credential(
                    session,
                    site_id=site.id,
                    person_id=person.id,
                    kind=kind,
                    actor=actor,
                    identifier=identifier,
                    secret_hash=secret,
                    valid_from=valid_from,
                    valid_until=_day_end(r.move_out),
                )
            result.person_ids.append(person.id)
        audit.append(
            session,
            actor=actor,
            operation="people_import",
            purpose=PURPOSE_ACCESS,
            outcome="ok",
            details={
                "import_id": import_id,
                "site_id": site.id,
                "imported": len(clean),
                "skipped_rows": len({e.row for e in errors}),
            },
        )
        result.written = True
        return result

    try:
        return run(
            session,
            work,
            actor=actor,
            operation="people_import",
            subject=None,
            purpose=PURPOSE_ACCESS,
        )
    except FacegateError:
        result.person_ids.clear()
        raise
