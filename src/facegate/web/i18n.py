"""The web pages' words in Simplified Chinese and English, and the language negotiation.

The language comes from the ``fg_lang`` cookie (the switch on every page), else from the
browser's Accept-Language; Chinese is the default for a Chinese deployment.
"""

from __future__ import annotations

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"

# Vision quality reasons and gate decision reasons, in plain words a person can act on.
QUALITY_WORDS: dict[str, tuple[str, str]] = {
    "ok": ("很好，保持不动", "Good, hold still"),
    "no_face": ("没有看到人脸，请正对摄像头", "No face seen: look at the camera"),
    "multiple_faces": ("画面中只能有一个人", "Only one person in the picture, please"),
    "face_too_small": ("请靠近一点", "Move closer"),
    "too_blurry": ("画面模糊，请保持不动", "Too blurry: hold still"),
    "too_dark": ("太暗了，请到更亮的地方", "Too dark: find more light"),
    "too_bright": ("太亮了，请避开强光", "Too bright: move away from strong light"),
    "off_angle": ("请正对摄像头", "Face the camera straight on"),
    "partial_face": ("请让整张脸都在画面里", "Keep your whole face in the picture"),
    "low_quality": ("画面质量不够，请调整位置", "Picture not good enough: adjust your position"),
    # issue 14: never says which signal failed
    "liveness_failed": (
        "没有确认是真人在镜头前：请本人正对摄像头，看清提示后慢慢做动作，再试一次",
        "We could not confirm a live person at the camera: face the camera yourself, read "
        "the prompt, follow it slowly, and try again",
    ),
    # issue 14 item 3: the prompt of a camera enrollment was not answered in time
    "challenge_expired": ("时间到了，请再试一次", "Time is up: please try again"),
}

DECISION_WORDS: dict[str, tuple[str, str]] = {
    "ok": ("请通行", "Welcome, please go ahead"),
    "no_face": ("请靠近并正对摄像头", "Please come closer and face the camera"),
    # Issue 16 item 10: no decision names a way in; the kiosk adds the ways its door accepts.
    "no_match": ("未识别", "Not recognised"),
    "ambiguous": ("无法确认", "Could not be sure"),
    "burst_disagree": ("请保持不动再试一次", "Hold still and try again"),
    "not_enrolled_here": ("此处未开通刷脸", "Face not set up here"),
    "consent_withdrawn": ("已撤回刷脸", "Face access withdrawn"),
    "consent_renewal_required": ("须重新确认同意", "Consent needs renewing"),
    "face_not_enabled": ("此处未启用刷脸", "Face is not on here"),
    "unknown_credential": ("无法识别此凭证", "This card or code is not known"),
    "credential_revoked": ("此凭证已停用", "This card or code was revoked"),
    "credential_expired": ("此凭证已过期", "This card or code has expired"),
    "not_valid_here": ("此凭证在此处无效", "Not valid at this entrance"),
    "wrong_pin": ("密码错误", "Wrong PIN"),
    "pin_locked": ("密码已锁定，请联系前台", "PIN locked: please see the front desk"),
    "pass_expired": ("通行码已过期", "This pass has expired"),
    "pass_used": ("通行码已使用", "This pass was already used"),
    "code_throttled": (
        "错误的短码太多，请稍后再试，或扫描二维码、联系前台",
        "Too many wrong codes: try again later, scan the QR code, or see the front desk",
    ),
    "offline_too_long": (
        "系统离线时间过长，请联系前台",
        "The system has been offline too long: please see the front desk",
    ),
    "liveness_failed": (
        "未能确认是真人，请本人正对摄像头或使用门卡",
        "Could not confirm a live person: face the camera yourself or use your card",
    ),
}

_T: dict[str, tuple[str, str]] = {
    "app": ("facegate 门禁", "facegate access"),
    "lang_switch": ("English", "中文"),
    "larger_text": ("大字", "Larger text"),
    "skip": ("跳到主要内容", "Skip to main content"),
    # console
    "setup_title": ("首次设置：创建管理员", "First run: create the administrator"),
    "setup_intro": (
        "系统没有默认密码。请为第一位管理员设置用户名和至少 10 位的密码。",
        "There is no default password. Choose a user name and a password of at least 10 "
        "characters for the first administrator.",
    ),
    "setup_code": ("设置码", "Setup code"),
    "setup_code_help": (
        "设置码由运行 facegate serve 的控制台在启动时显示（一次有效，{m} 分钟内）。"
        "也可以在服务器上运行 facegate admin create 创建管理员。",
        "The setup code is shown on the console where facegate serve runs, when it starts "
        "(valid once, for {m} minutes). You can also run facegate admin create on the server.",
    ),
    "setup_code_invalid": (
        "设置码错误、已使用或已过期。请输入 facegate serve 启动时在控制台显示的设置码，"
        "或在服务器上运行 facegate admin setup-code 获取新的设置码。",
        "The setup code is wrong, already used or expired. Enter the code facegate serve "
        "showed on its console when it started, or run facegate admin setup-code on the "
        "server for a new one.",
    ),
    "login_failed": ("用户名或密码错误。", "Wrong user name or password."),
    "login_throttled": (
        "登录失败次数过多，请等待 {s} 秒后再试。",
        "Too many failed sign-ins: wait {s} seconds and try again.",
    ),
    "sites_of_account": ("负责的场所", "Works for sites"),
    "all_sites": ("全部场所", "All sites"),
    "person_not_here": (
        "在您负责的场所中没有这个人（编号 {id}）。",
        "There is no such person ({id}) at the sites you work for.",
    ),
    "kiosk_no_ap": (
        "没有这个出入口（{id}）。请在“场所与出入口”页面为已有的出入口生成平板终端链接。",
        "There is no access point {id}. Make the kiosk link from an entrance listed on the "
        "Sites & entrances page.",
    ),
    "api_keys": ("API 密钥", "API keys"),
    "key_name": ("用途", "What it is for"),
    "key_scopes": ("权限", "Scopes"),
    "key_access_points": ("出入口", "Access points"),
    "key_created": ("创建时间", "Created"),
    "key_last_used": ("最近使用", "Last used"),
    "key_expires": ("到期", "Expires"),
    "key_never": ("从不", "Never"),
    "key_not_used": ("未使用", "Not used yet"),
    "key_revoked": ("已撤销", "Revoked"),
    "key_expired": ("已过期", "Expired"),
    "key_active": ("有效", "Active"),
    "key_revoke": ("撤销", "Revoke"),
    "key_all_points": ("全部出入口", "Every access point"),
    "no_api_keys": ("还没有 API 密钥。", "No API keys yet."),
    "state": ("状态", "State"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "role": ("角色", "Role"),
    "create": ("创建", "Create"),
    "login_title": ("登录", "Sign in"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "csrf_title": ("表单已过期", "This form has expired"),
    "csrf_body": (
        "为了安全，这个请求被拒绝了（缺少或错误的防伪令牌）。请返回、刷新页面后重试。",
        "For your safety this request was refused (missing or wrong anti-forgery token). "
        "Go back, reload the page and try again.",
    ),
    "error_title": ("无法完成", "That did not work"),
    # issue 18: the database is away
    "db_away_title": ("数据库暂时无法访问", "The database is away"),
    "db_away_body": (
        "门禁仍可使用门卡、密码、二维码和刷脸通行；其他操作需等数据库恢复后再试。",
        "Doors still decide on cards, PINs, QR passes and faces; everything else waits "
        "until the database is back. Please try again shortly.",
    ),
    "back": ("返回", "Back"),
    "nav_home": ("概览", "Overview"),
    "nav_sites": ("场所与出入口", "Sites & entrances"),
    "nav_people": ("人员", "People"),
    "nav_rights": ("权利请求", "Rights requests"),
    "nav_events": ("通行记录", "Event log"),
    "nav_compliance": ("合规", "Compliance"),
    "nav_docs": ("告知与标识", "Notice & signage"),
    "nav_audit": ("审计链", "Audit chain"),
    "nav_operators": ("账号", "Accounts"),
    "nav_keys": ("API 密钥", "API keys"),
    "site": ("场所", "Site"),
    "access_points": ("出入口", "Access points"),
    "access_point": ("出入口", "Entrance"),
    "name": ("名称", "Name"),
    "kind": ("类型", "Kind"),
    "location": ("位置类型", "Location type"),
    "methods": ("允许的方式", "Accepted methods"),
    "face_on": ("刷脸已启用", "Face on"),
    "face_off": ("刷脸未启用", "Face off"),
    "add_ap": ("添加出入口", "Add an access point"),
    "add": ("添加", "Add"),
    "kiosk_key": ("生成平板终端链接", "Make a kiosk link"),
    # issue 14: the liveness check per access point
    "liveness": ("活体检测", "Liveness check"),
    "liveness_passive": ("被动（默认）", "Passive (default)"),
    "liveness_challenge": ("动作提示（平板终端）", "Prompted movement (kiosk)"),
    "liveness_off": ("关闭（仅限卡+刷脸 1:1）", "Off (card + face 1:1 only)"),
    "liveness_save": ("保存活体检测设置", "Save liveness setting"),
    "kiosk_link_once": (
        "平板终端链接（只显示一次，请在出入口的平板上打开；为此出入口生成新链接后，旧链接即失效）：",
        "Kiosk link (shown once; open it on the tablet at this entrance. Making a new link for "
        "this entrance switches the previous one off):",
    ),
    "activate_face": ("启用刷脸", "Switch face on"),
    "deactivate_face": ("关闭刷脸", "Switch face off"),
    "m_face": ("刷脸", "Face"),
    "m_card": ("门卡", "Card"),
    "m_pin": ("密码", "PIN"),
    "m_qr": ("二维码", "QR pass"),
    "m_staffed": ("人工核验", "Staffed check"),
    "people": ("人员", "People"),
    "pseudonym": ("匿名编号", "Pseudonym"),
    "category": ("类别", "Category"),
    "credentials": ("凭证", "Credentials"),
    "consent": ("同意状态", "Consent"),
    "consent_active": ("已同意刷脸", "Face consent active"),
    "consent_none": ("未同意（使用门卡/密码/二维码）", "No face consent (card/PIN/QR)"),
    "declined": ("已选择不刷脸", "Declined face"),
    "enrolled": ("已录入", "Enrolled"),
    "withdrawn_state": ("已撤回刷脸同意", "Withdrew face consent"),
    "add_person": ("登记人员", "Register a person"),
    "birth_date": ("出生日期（可选）", "Birth date (optional)"),
    "unit": ("房号（可选）", "Unit (optional)"),
    "name_optional": ("姓名（可选，单独保存）", "Name (optional, kept apart)"),
    "cat_resident": ("业主/住户", "Resident"),
    "cat_tenant": ("租户", "Tenant"),
    "cat_guest": ("酒店住客", "Hotel guest"),
    "cat_staff": ("员工", "Staff"),
    "cat_visitor": ("访客", "Visitor"),
    "issue_card": ("发放门卡", "Issue a card"),
    "card_number": ("卡号", "Card number"),
    "invite": ("生成邀请链接", "Make an invitation link"),
    "invite_once": (
        "邀请链接（只显示一次，72 小时内有效，只能使用一次）：",
        "Invitation link (shown once, valid 72 hours, single use):",
    ),
    "guardian": ("监护人", "Guardian"),
    "desk_consent": ("在前台记录同意", "Record consent given at the desk"),
    "desk_consent_check": (
        "本人（或监护人）已阅读告知书，并自己选择了刷脸",
        "The person (or guardian) read the notice and chose face access themselves",
    ),
    "desk_consent_btn": ("记录同意", "Record consent"),
    "enroll_camera": ("用摄像头录入（须已同意）", "Enroll with the webcam (needs consent)"),
    "enroll_photo": ("用照片录入（须已同意）", "Enroll from a photo (needs consent)"),
    "photo": ("照片", "Photo"),
    "upload": ("上传并录入", "Upload and enroll"),
    "withdraw_desk": (
        "撤回刷脸同意（立即删除人脸数据）",
        "Withdraw face consent (erase face data now)",
    ),
    "enroll_done": ("录入完成。", "Enrolled."),
    # Issue 16 item 11: search, names for operators, a confirmation after every action,
    # refusals as short sentences.
    "search_people": ("按姓名、房号或卡号查找", "Find by name, unit or card number"),
    "search_people_auditor": ("按卡号或匿名编号查找", "Find by card number or pseudonym"),
    "search": ("查找", "Search"),
    "search_clear": ("显示全部", "Show everyone"),
    "search_found": ("“{q}”：找到 {n} 人。", "“{q}”: {n} found."),
    "person_name": ("姓名", "Name"),
    # Bulk import in the console (issue 16 items 12 and 7).
    "import_people": ("批量导入住户", "Import residents"),
    "import_hint": (
        "从物业系统导出的 CSV 或 Excel（.xlsx）文件，第一行为列名：姓名、房号、类别（业主、租户、"
        "住客、员工、访客）、电话、卡号、密码、入住日期、搬离日期。先检查每一行；只要有一行有误，"
        "就不导入任何人（除非选择“只导入无误的行”）。不导入照片，也不代替任何人同意：同意须由本人作出。",
        "A CSV or Excel (.xlsx) file exported by the property-management system, the first row "
        "naming the columns: name, unit, category (resident, tenant, guest, staff, visitor), "
        "contact, card, PIN, move-in and move-out dates. Every row is checked first; if any row "
        'is wrong, nobody is imported (unless you choose "import the valid rows only"). No '
        "photos and no consent are imported: consent is each person's own act.",
    ),
    "import_file": ("文件", "File"),
    "import_mode": ("操作", "What to do"),
    "import_mode_check": ("只检查，不导入", "Check only, import nothing"),
    "import_mode_import": ("全部无误时导入", "Import if every row is valid"),
    "import_mode_skip_invalid": ("只导入无误的行", "Import the valid rows only"),
    "import_submit": ("开始", "Go"),
    "import_refused": (
        "共 {rows} 行，发现 {n} 处问题，未导入任何人员。请修改文件后重新上传：",
        "{n} problem(s) in {rows} row(s); nobody was imported. Fix the file and upload it again:",
    ),
    "import_checked": (
        "已检查 {rows} 行：{valid} 行可以导入。尚未写入任何数据。",
        "Checked {rows} row(s): {valid} can be imported. Nothing was written.",
    ),
    "import_done": (
        "已导入 {n} 人（共 {rows} 行）。",
        "Imported {n} person(s) from {rows} row(s).",
    ),
    "import_skipped": ("以下各行未导入：", "These rows were not imported:"),
    "unit_short": ("房号", "Unit"),
    "no_name": ("（未登记姓名）", "(no name given)"),
    "person_added": ("已登记此人。", "Person registered."),
    "card_issued": ("已发放门卡 {card}。", "Card {card} issued."),
    "qr_issued": (
        "已生成二维码通行证：请让本人截图或抄下短码，它只显示这一次。",
        "QR pass issued: let the person take a picture or write down the short code; it is "
        "shown only this once.",
    ),
    "credential_revoked_done": (
        "已停用该通行证，其短码同时失效。",
        "Pass revoked, its short code too.",
    ),
    "qr_passes": ("二维码通行证", "QR passes"),
    "issue_qr": ("生成二维码通行证", "Issue a QR pass"),
    "revoke_pass": ("停用", "Revoke"),
    "consent_recorded": ("已记录同意。", "Consent recorded."),
    "err_invitation_invalid": (
        "这个邀请链接已过期或已被使用。请向前台索取新的链接。",
        "This invitation link has expired or was already used; ask the front desk for a new one.",
    ),
    "r_card_in_use": (
        "这个卡号在本场所已有人使用。请换一张卡。",
        "This card number is already in use at this site. Use another card.",
    ),
    "r_card_empty": ("请填写卡号。", "Type the card number."),
    "r_read_notice": (
        "请先让本人（或监护人）阅读告知书，并勾选确认。",
        "The person (or guardian) must read the notice first. Then tick the box.",
    ),
    "r_birth_date": ("出生日期格式应为 2015-06-30。", "Write the birth date like 2015-06-30."),
    "r_birth_future": ("出生日期不能晚于今天。", "The birth date cannot be in the future."),
    "r_consent_required": (
        "此人还没有同意刷脸。请先记录同意。",
        "This person has not agreed to face access yet. Record their consent first.",
    ),
    "r_guardian_consent": (
        "此人未满 14 周岁。须由已关联的监护人同意。",
        "This person is under 14. A linked parent or guardian must consent.",
    ),
    "r_key_unavailable": (
        "站点密钥不可用，无法读取或保存姓名。请联系管理员恢复密钥文件。",
        "The site key is not available, so names cannot be read or saved. Ask the "
        "administrator to restore the key file.",
    ),
    "r_enrollment_not_allowed": (
        "此人不能录入人脸（例如访客）。请改用门卡、密码或二维码。",
        "This person cannot enroll a face (a visitor, for example). Use a card, PIN or QR.",
    ),
    "withdraw_done": ("已撤回，人脸数据已删除。", "Withdrawn; face data erased."),
    "rights": ("权利请求", "Rights requests"),
    "answer_export": ("导出并交付（JSON）", "Export and hand over (JSON)"),
    "answer_erase": ("立即删除此人", "Erase this person now"),
    "reject_reason": ("拒绝理由", "Reason for refusing"),
    "reject": ("拒绝", "Refuse"),
    "received": ("收到", "Received"),
    "deadline": ("答复期限", "Deadline"),
    "status": ("状态", "Status"),
    "events": ("通行记录（不保存任何人脸图像）", "Event log (no face images are ever kept)"),
    "time": ("时间", "Time"),
    "method": ("方式", "Method"),
    "outcome": ("结果", "Outcome"),
    "reason": ("原因", "Reason"),
    "compliance": ("合规检查", "Compliance checks"),
    "rule": ("规则", "Rule"),
    "object": ("对象", "Object"),
    "severity": ("级别", "Severity"),
    "fix": ("整改", "Fix"),
    "no_findings": ("没有发现问题。", "No findings."),
    "compliance_unavailable": ("暂时无法读取实时状态：", "The live state cannot be checked yet: "),
    "docs": ("告知书、标识与影响评估", "Notice, signage and PIA"),
    "notice": ("个人信息处理告知书", "Privacy notice"),
    "signage": ("标识", "Signage"),
    "pia": ("个人信息保护影响评估（草稿）", "PIA (draft)"),
    "audit": ("审计链", "Audit chain"),
    "audit_ok": ("审计链完整", "The audit chain is intact"),
    "audit_broken": ("审计链被破坏，首个错误条目：", "The audit chain is broken at entry "),
    "entries": ("条目", "entries"),
    # What ``audit verify`` found, one sentence per kind (issue 13 item 17).
    "audit_kind_reset": (
        "审计日志被清空或重置，而签名检查点或现有记录表明此前还有条目。",
        "The audit log was emptied or reset, while the signed checkpoints or the records show "
        "there was more.",
    ),
    "audit_kind_truncated": (
        "审计日志末尾的条目被删除。",
        "Entries were removed from the end of the audit log.",
    ),
    "audit_kind_inserted": (
        "有条目不是由 facegate 写入的（没有审计密钥的封印）。",
        "Entries were added that facegate did not write (they lack the audit key's seal).",
    ),
    "audit_kind_deleted": ("审计日志中间的条目缺失。", "Entries are missing from the middle."),
    "audit_kind_rewritten": (
        "有条目被改写（内容、顺序、哈希或封印与检查点不符）。",
        "Entries were rewritten (content, order, hash or seal do not match).",
    ),
    "audit_kind_head": ("审计链头与链本身不一致。", "The chain's head disagrees with the chain."),
    "audit_kind_checkpoints": (
        "签名检查点文件缺失或被改动。",
        "The signed checkpoint file is missing or was changed.",
    ),
    "audit_kind_unaudited": (
        "有人员、同意或模板没有任何审计记录。",
        "People, consents or templates exist that no audit entry records.",
    ),
    "audit_anchored": ("已由签名检查点锚定：", "Anchored by the signed checkpoint of "),
    "audit_not_anchored": (
        "未锚定：数据目录中没有审计密钥。",
        "Not anchored: there is no audit key in the data directory.",
    ),
    "audit_findings": ("发现", "Findings"),
    "accounts": ("控制台账号", "Console accounts"),
    "role_admin": ("管理员", "Admin"),
    "role_operator": ("前台", "Front desk"),
    "role_auditor": ("审计（只读）", "Auditor (read-only)"),
    "overview": ("概览", "Overview"),
    "count_people": ("人员", "people"),
    "count_people_one": ("人员", "person"),
    "count_enrolled": ("已录入人脸", "with face data"),
    "count_aps": ("出入口", "access points"),
    "count_aps_one": ("出入口", "access point"),
    "camera": ("摄像头", "Camera"),
    "start_camera": ("打开摄像头", "Start the camera"),
    # issue 14 item 3: camera enrollment is a prompted movement, not one photo
    "challenge_start": ("开始录入：按提示做动作", "Enroll: follow the prompt"),
    "challenge_seconds": ("秒", "s"),
    "challenge_checking": ("正在确认…", "Checking…"),
    # self-service
    "welcome_title": ("您的门禁设置", "Your access settings"),
    "open_page": ("打开我的页面", "Open my page"),
    "invite_intro": (
        "这是物业/酒店发给您的一次性链接。点击下方按钮继续。",
        "This is a one-time link from your property or hotel. Press the button to continue.",
    ),
    "notice_first": (
        "请先阅读：我们如何处理人脸信息",
        "Please read first: how face data is handled",
    ),
    "in_short": ("简单说", "In short"),
    "plain_1": (
        "摄像头把您的脸转换成一串加密的特征值，只保存在本小区/酒店的服务器上；不保存照片。",
        "A camera turns your face into an encrypted code kept only on this site's own server; "
        "no photo is kept.",
    ),
    "plain_2": (
        "只用于开门，不做任何其他用途。",
        "It is used only to open doors, for nothing else.",
    ),
    "plain_3": (
        "完全自愿：门卡、密码或二维码同样可以进出，不收费、不排队。",
        "It is your choice: a card, PIN or QR pass works just as well, at no cost and no wait.",
    ),
    "plain_4": (
        "您可以随时在本页面撤回，人脸数据会立即删除。",
        "You can withdraw at any time on this page; your face data is erased at once.",
    ),
    "full_notice": ("完整告知书", "The full notice"),
    "next_steps": (
        "开启人脸识别前还须完成：",
        "Before face recognition can be switched on:",
    ),
    "next_add_entrance": (
        "下一步：添加出入口，并选择它接受的通行方式。",
        "Next: add an entrance and the ways in it accepts.",
    ),
    "next_go": ("去处理", "Go there"),
    "public_notice_title": ("人脸信息处理规则", "Facial recognition processing rules"),
    "public_notice_how": (
        "刷脸完全自愿。想使用刷脸，请向前台或物业索取您的邀请链接；不使用也可以凭门卡、密码或"
        "二维码照常进出。",
        "Face access is voluntary. To use it, ask the front desk or property office for your "
        "invitation link; without it you come and go by card, PIN or QR pass as before.",
    ),
    "public_notice_none": (
        "告知书尚未发布：本场所尚未使用人脸识别。",
        "No notice is published yet: face recognition is not in use here.",
    ),
    "choice_title": ("您想用刷脸开门吗？", "Would you like to use face access?"),
    "choice_hint": (
        "两种方式都可以正常进出。选择不刷脸不会影响您的任何权益，我们也不会再次询问。",
        "Both ways get you in. Saying no changes nothing about your access, and we will not "
        "ask again.",
    ),
    "choose_yes": ("使用刷脸通行", "Use face access"),
    "choose_no": ("不用了，使用门卡/密码/二维码", "No thanks, use my card/PIN/QR"),
    "for_child": (
        "您正在代表您的孩子作出选择（监护人同意）。",
        "You are deciding for your child (guardian consent).",
    ),
    "declined_msg": (
        "您选择了不使用刷脸。您的其他通行方式照常有效（各出入口可用的方式见“我的数据”），"
        "我们不会再询问。",
        "You chose not to use face access. Your other ways in work as before (My data shows "
        "which ones each entrance takes), and we will not ask again.",
    ),
    "new_qr": ("您的二维码通行证", "Your QR pass"),
    "qr_pass_image": ("二维码通行证图像，在读卡器上出示", "QR pass picture, to show at the reader"),
    "qr_pass_short": (
        "在读卡器上出示上面的二维码；在自助终端或按键上也可以输入这个短码（不分大小写，短横可省略）：",
        "Show the QR code above at the reader, or type this short code at a kiosk or keypad "
        "(capital letters or not, with or without the dash):",
    ),
    "qr_pass_full": ("完整通行码（备用）", "Full pass code (spare)"),
    "qr_pass_doors": ("可在这些出入口使用：", "It opens at:"),
    "qr_pass_no_doors": (
        "本站点目前没有出入口接受二维码通行证：请到前台领取门卡。",
        "No entrance here takes QR passes yet: ask the front desk for a card.",
    ),
    "ways_in": ("各出入口可用的通行方式", "How you can get in, entrance by entrance"),
    "ways_in_none": ("暂无，请联系前台", "none yet: please see the front desk"),
    "qr_pass_keep": (
        "请截图或抄下保存：它只显示这一次。",
        "Take a screenshot or write it down: it is shown only this once.",
    ),
    "change_mind": (
        "如果以后改变主意，可以在这里开启刷脸。",
        "If you change your mind later, you can turn face access on here.",
    ),
    "consented_msg": ("您已同意使用刷脸。", "You agreed to face access."),
    "enroll_title": ("录入人脸", "Enroll your face"),
    "enroll_hint": (
        "看着摄像头。提示变绿后点击“开始录入”，屏幕会显示一个动作（如慢慢向左转头或点头），"
        "请在倒计时内完成。照片不会被保存，只保存加密的特征值。",
        "Look at the camera. When the hint turns green, press “Enroll”: the screen shows a "
        "movement (such as slowly turning your head left, or a nod); make it before the "
        "countdown ends. No photo is kept, only an encrypted template.",
    ),
    "enroll_ok": ("录入成功，您现在可以刷脸通行。", "Done: you can now use face access."),
    "my_data": ("我的数据", "My data"),
    "what_stored": ("我们保存的内容", "What is stored"),
    "consents": ("同意记录", "Consents"),
    "recent_events": ("最近的通行记录（按方式）", "Recent access events (by method)"),
    "export": ("导出我的数据（JSON）", "Export my data (JSON)"),
    "withdraw": ("撤回刷脸同意", "Withdraw face consent"),
    "withdraw_confirm": (
        "确定撤回吗？您的人脸数据会立即删除，您的其他通行方式照常有效。",
        "Withdraw? Your face data is erased at once; your other ways in keep working.",
    ),
    "withdraw_yes": ("确定撤回", "Yes, withdraw"),
    "withdrawn_msg": (
        "已撤回。您的人脸数据已删除，各出入口不再识别您的人脸。",
        "Withdrawn. Your face data is erased and no entrance recognises your face any more.",
    ),
    "rights_form": ("提出请求", "Make a request"),
    "visitor_title": ("邀请访客", "Invite a visitor"),
    "visitor_help": (
        "访客凭二维码通行：不采集人脸，不登记姓名，到期或用完即失效。",
        "Your visitor enters with a QR pass: no face is captured and no name is recorded; "
        "it stops working when it expires or is used up.",
    ),
    "visitor_hours": ("有效时长（小时）", "Valid for (hours)"),
    "visitor_uses": ("可通行次数", "Number of entries"),
    "visitor_make": ("生成访客通行码", "Make a visitor pass"),
    "visitor_made": (
        "访客通行码已生成，只显示这一次：请截图或转发给访客。",
        "Here is the visitor pass. It is shown only this once: send it to your visitor.",
    ),
    "visitor_until": ("有效至", "Valid until"),
    "rights_kind": ("请求类型", "Kind of request"),
    "rk_access": ("查阅", "See my data"),
    "rk_correction": ("更正", "Correct my data"),
    "rk_erasure": ("删除", "Delete my data"),
    "rk_explanation": ("解释处理规则", "Explain the rules"),
    "submit": ("提交", "Send"),
    "rights_sent": ("已收到您的请求，答复期限：", "Request received; answer due by "),
    "none": ("无", "none"),
    "templates_count": ("加密人脸模板", "Encrypted face templates"),
    "session_over": (
        "您的会话已结束。请向前台索取新的邀请链接。",
        "Your session has ended. Ask the front desk for a new invitation link.",
    ),
    # kiosk
    "kiosk_face_here": ("此处使用人脸识别", "Face recognition in use here"),
    "kiosk_alternatives": ("也可以使用：", "You can also use:"),
    "kiosk_card": ("刷卡/输入卡号", "Card number"),
    "kiosk_pin": ("密码", "PIN"),
    "kiosk_qr": ("二维码通行证短码", "QR pass short code"),
    "kiosk_use": ("请使用：", "Please use:"),
    "kiosk_go": ("确认", "Go"),
    "kiosk_waiting": (
        "请看摄像头，或使用下方其他方式",
        "Look at the camera, or use another way below",
    ),
    "kiosk_nokey": (
        "此页面缺少终端密钥。请从控制台“生成平板终端链接”打开。",
        'This page has no kiosk key. Open it from the console\'s "Make a kiosk link".',
    ),
    "allow": ("允许", "Allowed"),
    "deny": ("拒绝", "Denied"),
    "operator_label": ("处理者", "Operator"),
    "purpose_label": ("目的", "Purpose"),
    "purpose_text": ("仅用于门禁通行", "Access control only"),
    # activation steps (notice facts, PIA, signage)
    "steps_title": ("开启刷脸前的步骤", "Before face can be switched on"),
    "step_notice": (
        "填写处理者信息并发布告知书",
        "Complete the operator facts and publish the notice",
    ),
    "step_pia": ("登记已签署的影响评估", "Register the signed PIA"),
    "step_signage": (
        "张贴每个出入口的标识并登记",
        "Put up the sign at each entrance and record it",
    ),
    "step_face": ("在出入口页面开启刷脸", "Switch face on at the entrance"),
    "blocking_now": ("目前阻止开启刷脸的规则：", "Rules blocking face right now:"),
    "no_blockers": ("没有阻止开启刷脸的规则。", "No rule blocks switching face on."),
    "back_to_steps": ("← 返回步骤", "← Back to the steps"),
    "notice_setup": ("处理者信息与告知书", "Operator facts and notice"),
    "operator_facts": ("告知书需要的处理者信息", "Operator facts the notice needs"),
    "operator_facts_help": (
        "这些信息写入告知书（第 1、6、9、11、13 项）。保存后再发布新版本。",
        "These go into the notice (fields N1, N6, N9, N11, N13). Save, then publish a new version.",
    ),
    "op_name": ("处理者名称（法定名称）", "Operator (legal name)"),
    "op_address": ("地址", "Address"),
    "op_contact": ("联系电话或邮箱", "Phone or e-mail"),
    "op_pipo": (
        "个人信息保护负责人联系方式（如有）",
        "Personal-information protection officer (if any)",
    ),
    "necessity": ("必要性说明", "Necessity statement"),
    "public_url": (
        "公网地址（住户手机打开标识和邀请二维码所用，须为 HTTPS）",
        "Public address (what residents' phones open from signs and invitation QR codes; HTTPS)",
    ),
    "notice_url": ("告知书网址（标识二维码指向）", "Notice address (the sign's QR code)"),
    "self_service_url": ("自助页面网址", "Self-service page address"),
    "minors_rules_url": ("未成年人个人信息处理规则网址", "Minors' processing rules address"),
    "accessible_forms": ("无障碍方式", "Accessible forms offered"),
    "acc_large_print": ("大字版告知书", "Large-print notice"),
    "acc_audio": ("语音朗读", "Audio read-out"),
    "acc_staff": ("前台工作人员协助", "Staff help at the front desk"),
    "save_facts": ("保存", "Save"),
    "facts_saved": (
        "已保存。请查看下方变更并发布新版本。",
        "Saved. Review the changes below and publish.",
    ),
    "publish_notice": ("发布告知书", "Publish the notice"),
    "current_notice": ("当前版本", "Current version"),
    "would_change": ("发布将更改：", "Publishing changes:"),
    "renewal_warning": (
        "这些变更涉及目的、处理方式、信息种类、保存期限或单独同意：发布后，已同意的人需要重新同意，在此之前其刷脸停止工作（门卡等方式不受影响）。受影响人数：",
        "These changes touch the purpose, processing, data, retention or separate consent: "
        "after publishing, everyone who consented must consent again, and their face stops "
        "working until they do (cards and PINs keep working). People affected:",
    ),
    "renewal_people": ("人", "people"),
    "renewal_people_one": ("人", "person"),
    "no_renewal": (
        "这些变更不需要重新同意；已同意的人不受影响。",
        "These changes need no new consent; people who consented are not affected.",
    ),
    "publish_new_version": ("发布新版本", "Publish a new version"),
    "notice_up_to_date": ("告知书与当前配置一致。", "The notice matches the configuration."),
    "awaiting_renewal": ("份同意正在等待重新确认", "consents are waiting for renewal"),
    "notice_published": ("新版本已发布。", "The new version is published."),
    "pia_title": ("个人信息保护影响评估", "Personal-information protection impact assessment"),
    "pia_help": (
        "先打印草稿，由负责人评估并签署，再在此登记（CAC-FR-09a）。目的、方式或保存期限改变后需要新的评估。",
        "Print the draft, have it assessed and signed, then register it here (CAC-FR-09a). "
        "A change of purpose, method or retention needs a new one.",
    ),
    "no_pia_yet": ("尚未登记影响评估。", "No PIA registered yet."),
    "register_pia": ("登记已签署的评估", "Register a signed PIA"),
    "pia_version": ("版本", "Version"),
    "pia_date": ("签署日期", "Date signed"),
    "pia_signer": ("签署人", "Signed by"),
    "pia_document": ("签署文件存放位置（可选）", "Where the signed copy is kept (optional)"),
    "pia_registered": ("已登记。", "Registered."),
    "signage_title": ("出入口标识", "Signs at the entrances"),
    "signage_help": (
        "每个使用刷脸的出入口须在采集区域边界张贴当前告知书版本的标识（CAC-FR-13a）。打印、张贴后在此登记。",
        "Every entrance that uses face needs a sign for the current notice at the edge of the "
        "camera's view (CAC-FR-13a). Print it, put it up, then record it here.",
    ),
    "print_sign": ("打印标识", "Print the sign"),
    "sign_up": ("已张贴", "Up since"),
    "sign_stale": ("标识对应旧版告知书，请更换", "The sign shows an old notice; replace it"),
    "sign_missing": ("尚未登记标识", "No sign recorded yet"),
    "sign_where": ("我已将此标识张贴在", "I have put up this sign at"),
    "sign_where_eg": ("例如：大门左侧，齐眼高", "e.g. left of the gate, eye level"),
    "sign_on": ("张贴日期", "On"),
    "sign_record": ("登记", "Record"),
    "sign_recorded": ("已登记。", "Recorded."),
    "no_face_points": ("没有接受刷脸的出入口。", "No entrance accepts face."),
}


# Stored values people see on a page (issue 16 item 7): kinds, location types, key scopes,
# combined methods, finding severities and objects, in both languages.
VALUE_WORDS: dict[str, tuple[str, str]] = {
    # access point kinds
    "gate": ("大门", "Gate"),
    "door": ("门", "Door"),
    "elevator": ("电梯", "Elevator"),
    "lobby": ("大堂", "Lobby"),
    "kiosk": ("自助终端", "Kiosk"),
    # location types
    "entrance": ("出入口", "Entrance"),
    "corridor": ("走廊", "Corridor"),
    "parking": ("停车场", "Parking"),
    "guest_room": ("客房", "Guest room"),
    "bathroom": ("浴室", "Bathroom"),
    "sales_office": ("售楼处", "Sales office"),
    "public_area": ("公共区域", "Public area"),
    # API key scopes
    "gate:decide": ("门禁判定", "Gate decisions"),
    "admin": ("管理", "Administration"),
    "enroll": ("登记", "Enrollment"),
    "rights": ("权利请求", "Rights requests"),
    # finding severities and objects
    "blocker": ("阻断", "Blocker"),
    "warning": ("警告", "Warning"),
    "info": ("提示", "Note"),
    "notice": ("告知书", "Notice"),
    "pia": ("影响评估", "PIA"),
    "operator": ("运营方", "Operator"),
    "filing": ("备案", "Filing"),
    "security": ("安全", "Security"),
    "deployment": ("部署", "Deployment"),
    "audit_log": ("审计日志", "Audit log"),
}


def pick_lang(cookie: str | None, accept_language: str | None) -> str:
    """The cookie wins; else the first supported language in Accept-Language."""
    if cookie in LANGS:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANG


class Translator:
    """``t("key")`` in templates; quality and decision reasons in plain words."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT_LANG
        self._i = 0 if self.lang == "zh-CN" else 1

    def __call__(self, key: str) -> str:
        pair = _T.get(key)
        return pair[self._i] if pair else key

    def quality(self, reason: str) -> str:
        pair = QUALITY_WORDS.get(reason) or QUALITY_WORDS["low_quality"]
        return pair[self._i]

    def decision(self, reason: str) -> str:
        base = reason.split(":")[0]
        if base == "low_quality":
            return self.quality(reason.partition(":")[2] or "low_quality")
        if base == "method_not_accepted":
            return "此处不接受这种方式" if self._i == 0 else "This entrance does not accept that"
        pair = DECISION_WORDS.get(base)
        if pair is None:
            return reason
        return pair[self._i]

    def value(self, v: object) -> str:
        """A stored value in words: a kind, location, scope, severity; methods joined by
        ``+`` (``card+face``) become their words joined; anything else as it is."""
        text = "" if v is None else str(v)
        if "+" in text and all(f"m_{m}" in _T for m in text.split("+")):
            return " + ".join(self(f"m_{m}") for m in text.split("+"))
        if f"m_{text}" in _T:
            return self(f"m_{text}")
        pair = VALUE_WORDS.get(text)
        return pair[self._i] if pair else text

    def count(self, n: object, key: str) -> str:
        """The word after a number: ``1 person``, ``2 people`` (``key_one`` for one)."""
        return self(f"{key}_one") if n == 1 and f"{key}_one" in _T else self(key)

    def table(self, keys: list[str]) -> dict[str, str]:
        """Several words at once, for the page's JavaScript."""
        return {k: self(k) for k in keys}

    def all_quality(self) -> dict[str, str]:
        return {k: v[self._i] for k, v in QUALITY_WORDS.items()}

    def all_decisions(self) -> dict[str, str]:
        return {k: v[self._i] for k, v in DECISION_WORDS.items()}
