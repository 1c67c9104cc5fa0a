"""The gate kiosk: a full-screen page for a tablet at an access point.

The page holds no secret of its own: the gate key comes in the URL fragment (never sent to
the server by the browser) and is used only as the ``X-API-Key`` of calls to the decide API.
Frames go from the camera to the decide API and are dropped there (STD-41819-04); the page
keeps none.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facegate.domain.activation import access_point_info
from facegate.errors import FacegateError
from facegate.web.common import fail, render, runtime, translator

router = APIRouter(include_in_schema=False)


@router.get("/kiosk/{ap_id}", response_class=HTMLResponse)
def kiosk(request: Request, ap_id: str) -> Response:
    rt = runtime(request)
    try:
        with rt.store.session() as s:
            info = access_point_info(s, ap_id)
    except FacegateError as exc:
        raise fail(request, exc, "/") from None
    tr = translator(request)
    return render(
        request,
        "kiosk.html",
        {
            "ap": info,
            "words": {
                **tr.all_decisions(),
                **tr.table(["allow", "deny", "kiosk_waiting", "kiosk_nokey"]),
            },
            "quality_words": tr.all_quality(),
        },
    )
