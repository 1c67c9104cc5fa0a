"""``facegate agent``: run the camera agent at one access point (issue 15)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import typer

from facegate.errors import FacegateError

log = logging.getLogger("facegate.edge.agent")


CHALLENGE_POINT_WARNING = (
    "warning: access point {ap} asks a person at a screen to follow a prompt (liveness: "
    "challenge); a camera agent cannot ask, so no face will open it (cards and QR passes "
    "still do). For a camera at a door run: facegate access-point liveness {ap} passive\n"
    "警告：出入口 {ap} 的活体检测为“按提示做动作”，摄像头代理无法提示，"
    "刷脸不会开门（门卡和通行码仍可用）。如需刷脸开门，请运行："
    "facegate access-point liveness {ap} passive"
)


def agent(
    access_point: str = typer.Option(..., "--access-point", help="The access point's id (ap-...)"),
    camera: str = typer.Option(
        ...,
        "--camera",
        help="rtsp://..., http(s)://... (MJPEG), /dev/videoN, or a video file (plays in a loop)",
    ),
    door: list[str] = typer.Option(
        [],
        "--door",
        help="A door output, repeatable: http(s)://... (options after #: method, body, header, "
        "timeout, retries, open_s), mqtt://host:port/topic, osdp://...",
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        help="The gate server's URL; without it the agent decides in process against the "
        "local data directory",
    ),
    key: str | None = typer.Option(
        None,
        "--key",
        envvar="FACEGATE_AGENT_KEY",
        help="A gate:decide key for --server (better in FACEGATE_AGENT_KEY: a command line "
        "is visible to other users)",
    ),
    reader: str | None = typer.Option(
        None,
        "--reader",
        help="Card/QR reader lines: '-' for standard input (a keyboard-wedge reader), or a path "
        "(a serial port, a FIFO)",
    ),
    card_with_face: bool = typer.Option(
        False,
        "--card-with-face",
        help="Card+face door (1:1): a card waits for the face and both are sent together; "
        "no face-only decisions",
    ),
    open_s: float | None = typer.Option(
        None, "--open-s", help="Door release time in seconds (default FACEGATE_DOOR_OPEN_S)"
    ),
    metrics_port: int = typer.Option(
        9108, "--metrics-port", help="Serve /metrics on this port (0: off)"
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host"),
    data_dir: Path | None = typer.Option(None, "--data-dir", envvar="FACEGATE_DATA_DIR"),
    db: str | None = typer.Option(None, "--db", help="Database URL (in-process decisions)"),
) -> None:
    """Watch a camera at a door: one decision per person per approach, the door obeys."""
    from facegate.api.observability import configure_logging
    from facegate.cli.server_cmds import _settings
    from facegate.edge.agent import Agent, AgentConfig, LocalDecider, RemoteDecider
    from facegate.edge.agent.camera import FrameSource, describe_source
    from facegate.edge.agent.readers import LineReader
    from facegate.edge.doors import door_from_spec
    from facegate.edge.doors.http import HttpDoor

    try:
        settings = _settings(data_dir, db)
    except ValueError as exc:
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_json)
    if not door:
        typer.echo("error: name at least one door output with --door", err=True)
        raise typer.Exit(2)
    if server and not key:
        typer.echo("error: --server needs a gate key (--key or FACEGATE_AGENT_KEY)", err=True)
        raise typer.Exit(2)
    doors = []
    decider = None
    try:
        for spec in door:
            d = door_from_spec(spec)
            if isinstance(d, HttpDoor):
                d.use_defaults(
                    timeout_s=settings.door_timeout_s,
                    retries=settings.door_retries,
                    open_s=open_s if open_s is not None else settings.door_open_s,
                )
            doors.append(d)
        if server:
            decider = RemoteDecider(
                server, key or "", access_point, settings.agent_decide_timeout_s
            )
        else:
            decider = LocalDecider(settings, access_point)
            if decider.liveness_policy == "challenge":
                # The agent asks nobody to move: at a challenge point no face would open.
                typer.echo(CHALLENGE_POINT_WARNING.format(ap=access_point), err=True)
    except FacegateError as exc:
        for d in doors:
            d.close()
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2 if exc.http_status < 500 else 1) from None

    over = {"credential_with_face": card_with_face}
    if open_s is not None:
        over["open_s"] = open_s
    config = AgentConfig.from_settings(settings, access_point, **over)
    detector = decider.pipeline.detector if isinstance(decider, LocalDecider) else None
    bot = Agent(config, decider, doors, detector=detector)
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, metrics_host, registry=bot.metrics.registry)
        except OSError as exc:
            decider.close()
            for d in doors:
                d.close()
            typer.echo(
                f"error: cannot serve /metrics on {metrics_host}:{metrics_port} ({exc.strerror}); "
                "choose another --metrics-port, or 0 for none",
                err=True,
            )
            raise typer.Exit(2) from None
    source = FrameSource(
        camera,
        bot.on_frame,
        on_state=bot.on_camera_state,
        reconnect_min_s=settings.agent_reconnect_min_s,
        reconnect_max_s=settings.agent_reconnect_max_s,
    )
    if reader == "-":
        LineReader(sys.stdin, bot.on_credential).start()
    elif reader:
        LineReader(open(reader, encoding="utf-8", errors="replace"), bot.on_credential).start()  # noqa: SIM115

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "agent for %s watching %s; doors: %s; deciding %s",
        access_point,
        describe_source(camera),
        ", ".join(d.describe() for d in doors),
        f"through {server}" if server else "in process",
    )
    bot.start(source)
    stop.wait()
    log.info("agent stopping")
    bot.stop()
    for d in doors:
        d.close()
    decider.close()
