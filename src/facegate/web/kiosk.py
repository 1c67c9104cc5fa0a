"""The gate kiosk: a full-screen page for a tablet at an access point.

The page holds no secret of its own: the gate key comes in the URL fragment (never sent to
the server by the browser) and is used only as the ``X-API-Key`` of calls to the API. The
page itself says nothing about the access point (not even whether it exists) until the key
is presented: the script then fetches the entrance, its methods and the operator from
``GET /v1/access-points/{id}/kiosk`` with the key (issue 13 item 11). Frames go from the
camera to the decide API and are dropped there (STD-41819-04); the page keeps none.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from facegate.web.common import render, translator

router = APIRouter(include_in_schema=False)

METHODS = ("face", "card", "pin", "qr", "staffed")
KIOSK_WORDS = ["allow", "deny", "kiosk_waiting", "kiosk_nokey", "kiosk_face_here", "kiosk_use"]


@router.get("/kiosk/{ap_id}", response_class=HTMLResponse)
def kiosk(
    request: Request, ap_id: str = Path(max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
) -> Response:
    tr = translator(request)
    return render(
        request,
        "kiosk.html",
        {
            "ap_id": ap_id,
            "words": {
                **tr.all_decisions(),
                **tr.table(
                    [
                        "allow",
                        "deny",
                        "kiosk_waiting",
                        "kiosk_nokey",
                        "kiosk_face_here",
                        "kiosk_use",
                    ]
                ),
            },
            "quality_words": tr.all_quality(),
            "method_words": tr.table([f"m_{m}" for m in METHODS]),
        },
    )
