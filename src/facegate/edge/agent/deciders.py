"""Who decides: the domain function in this process, or the gate server's decide API.

Both give the same answer for the same input, because both end in
``facegate.access.passage``: in process the agent calls it; with ``--server`` the server does.
Whatever goes wrong on the way (server unreachable, timeout, error, busy) is
``DecideUnavailable``: the agent keeps the door closed (fail closed).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from facegate.errors import FacegateError

log = logging.getLogger("facegate.edge.agent")

ACTOR = "edge-agent"


class DecideUnavailable(FacegateError):
    """facegate could not decide; the door stays closed."""

    code = "decide_unavailable"
    http_status = 503


@dataclass(frozen=True)
class Credential:
    kind: str  # card or qr
    value: str


def _request_id() -> str:
    return "agent-" + uuid.uuid4().hex[:20]


class LocalDecider:
    """Decides against the local data directory with the same function the API calls."""

    def __init__(self, settings: Any, access_point_id: str, *, pipeline: Any = None) -> None:
        from facegate.access.decide import access_point
        from facegate.access.single_process import lock_for_database
        from facegate.api.runtime import GateRuntime

        self.access_point_id = access_point_id
        # Like ``facegate serve``: one process holds a SQLite gallery (a second would go
        # stale); beside a running server, run the agent with --server instead.
        self._lock = lock_for_database(settings.database_url)
        self.rt = GateRuntime(settings, pipeline=pipeline)
        with self.rt.store.session() as s:
            # NotFound now, not at the first person.
            self.liveness_policy = access_point(s, access_point_id).liveness or "passive"
        self.rt.warm_up()
        self.rt.start_sync()

    @property
    def pipeline(self) -> Any:
        return self.rt.pipeline

    def decide(self, frames: list[np.ndarray], credential: Credential | None) -> dict:
        from facegate.access import passage
        from facegate.access.decide import CredentialInput

        cred = CredentialInput(
            card=credential.value if credential and credential.kind == "card" else None,
            qr=credential.value if credential and credential.kind == "qr" else None,
        )
        try:
            probes = None
            if frames and not passage.face_use_allowed(self.rt, self.access_point_id, cred):
                frames = []  # their face is not processed at all (CAC-FR-06b)
            if frames:
                # BGR camera frames to the RGB arrays the pipeline takes; dropped on return.
                # The agent runs no prompted challenge: at a `challenge` point no face opens
                # (keep points a camera agent serves `passive`).
                mode = passage.liveness_mode(self.rt, self.access_point_id, cred)
                rgbs = [f[..., ::-1] for f in frames]
                probes = passage.analyze_frames(self.rt.pipeline, rgbs, mode)
            result = passage.decide_passage(
                self.rt,
                access_point_id=self.access_point_id,
                request_id=_request_id(),
                actor=ACTOR,
                credential=cred,
                probes=probes,
            )
        except FacegateError as exc:
            raise DecideUnavailable(f"facegate refused to decide: {exc.message}") from exc
        except Exception as exc:  # noqa: BLE001 - a database or model failure: fail closed
            log.exception("deciding failed")
            raise DecideUnavailable(f"deciding failed: {type(exc).__name__}") from exc
        return result.to_dict()

    def report_door_failure(self, request_id: str, door: str, error: str) -> None:
        from facegate.domain.door_outputs import record_door_output_failed

        with self.rt.store.session() as s:
            record_door_output_failed(
                s,
                actor=ACTOR,
                access_point_id=self.access_point_id,
                request_id=request_id,
                door=door,
                error=error,
            )

    def close(self) -> None:
        self.rt.close()
        if self._lock is not None:
            self._lock.release()


class RemoteDecider:
    """Sends the burst (JPEG in memory) and credential to ``POST .../decide`` with a gate key."""

    def __init__(self, server: str, key: str, access_point_id: str, timeout_s: float) -> None:
        import httpx

        self.base = server.rstrip("/")
        self.access_point_id = access_point_id
        self._httpx = httpx
        self._client = httpx.Client(headers={"X-API-Key": key}, timeout=timeout_s)
        self.url = f"{self.base}/v1/access-points/{access_point_id}/decide"

    def decide(self, frames: list[np.ndarray], credential: Credential | None) -> dict:
        httpx = self._httpx
        fields = {credential.kind: credential.value} if credential else {}
        try:
            if frames:
                files = []
                for i, f in enumerate(frames):
                    ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 92])
                    if not ok:
                        raise DecideUnavailable("a camera frame could not be encoded")
                    files.append(("frame", (f"f{i}.jpg", buf.tobytes(), "image/jpeg")))
                r = self._client.post(self.url, files=files, data=fields)
                files.clear()  # principle 3: the encoded frames go with the request
            else:
                r = self._client.post(self.url, json=fields)
        except httpx.HTTPError as exc:
            raise DecideUnavailable(
                f"the gate server at {self.base} cannot be reached: {type(exc).__name__}"
            ) from exc
        if r.status_code != 200:
            try:
                code = r.json().get("code", "")
            except ValueError:
                code = ""
            raise DecideUnavailable(
                f"the gate server answered HTTP {r.status_code} {code}".strip()
                + (" (is the gate key bound to this access point?)" if r.status_code == 403 else "")
            )
        body = r.json()
        if body.get("decision") not in ("allow", "deny"):
            raise DecideUnavailable("the gate server's answer has no decision")
        return body

    def report_door_failure(self, request_id: str, door: str, error: str) -> None:
        url = f"{self.base}/v1/access-points/{self.access_point_id}/door-output-failed"
        try:
            r = self._client.post(
                url, json={"request_id": request_id, "door": door, "error": error[:160]}
            )
            if r.status_code >= 400:
                log.error("the server did not record door_output_failed: HTTP %s", r.status_code)
        except self._httpx.HTTPError as exc:
            log.error("the server did not record door_output_failed: %s", type(exc).__name__)

    def close(self) -> None:
        self._client.close()
