"""A real RTSP server for the agent tests: Debian's GStreamer RTSP server (python3-gi).

Run with the SYSTEM python (``/usr/bin/python3``; python3-gi is not in the venv):
``rtsp_test_server.py PORT /mount=video.avi [/mount2=other.mp4 ...]``. Each mount plays its
MJPEG-in-AVI file once per client, encoded to H.264 as an IP camera sends it (an H.264 MP4 is
sent as it is), then ends the stream (a new client gets it from the start). Prints ``ready``
when listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
mounts = server.get_mount_points()
for arg in sys.argv[2:]:
    mount, _, path = arg.partition("=")
    factory = GstRtspServer.RTSPMediaFactory()
    if path.endswith(".mp4"):  # already H.264 (benchmarks): sent as it is, no encoding
        factory.set_launch(
            f"( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )"
        )
    else:
        factory.set_launch(
            f"( filesrc location={path} ! avidemux ! jpegdec ! videoconvert ! "
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! "
            "rtph264pay name=pay0 pt=96 )"
        )
    factory.set_shared(False)
    mounts.add_factory(mount, factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
