#!/usr/bin/python3
"""A loopback RTSP camera for classproof's tests (gst-rtsp-server via Debian's python3-gi).

Serves one mount, /cam, with a live generated stream (H.264 or H.265) or a video file, and
prints "READY <port>" on stdout once it listens. Stop it with SIGTERM or SIGKILL; freeze it with
SIGSTOP to simulate a stalled camera.

Usage: rtsp_server.py --port 8554 [--codec h264|h265] [--file video.mp4] [--fps 25] [--gop 25]
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--codec", choices=["h264", "h265"], default="h264")
    ap.add_argument("--file", help="serve this MP4 (H.264) instead of a generated stream")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=25, help="keyframe interval in frames")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--bitrate", type=int, default=800, help="kbit/s")
    args = ap.parse_args()

    Gst.init(None)
    w, h = args.size.split("x")
    if args.file:
        launch = (
            f"( filesrc location={args.file} ! qtdemux ! h264parse config-interval=-1 "
            f"! rtph264pay name=pay0 pt=96 )"
        )
    else:
        src = (
            f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},"
            f"framerate={args.fps}/1 ! timeoverlay ! videoconvert"
        )
        if args.codec == "h264":
            enc = (
                f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={args.bitrate} "
                f"key-int-max={args.gop} ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96"
            )
        else:
            enc = (
                f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={args.bitrate} "
                f"key-int-max={args.gop} ! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96"
            )
        launch = f"( {src} ! {enc} )"

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    if args.file:
        # A file mount replays the file again for every new client.
        factory.set_shared(False)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        sys.exit(1)
    print(f"READY {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
