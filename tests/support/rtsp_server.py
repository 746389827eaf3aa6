#!/usr/bin/python3
"""A loopback RTSP camera for classproof's tests (gst-rtsp-server via Debian's python3-gi).

Serves one mount, /cam, with a live generated stream (H.264 or H.265) or a video file, and
prints "READY <port>" on stdout once it listens. Stop it with SIGTERM or SIGKILL; freeze it with
SIGSTOP to simulate a stalled camera.

Before it listens it runs its own pipeline once into a fakesink until the first buffer comes
out (a pre-roll): a pipeline that cannot run (a missing GStreamer element, a file that is not a
playable MP4) makes it print GStreamer's own error on stderr and exit with status 3 at once,
instead of accepting RTSP clients it can never serve.

Usage: rtsp_server.py --port 8554 [--codec h264|h265] [--file video.mp4] [--fps 25] [--gop 25]
       rtsp_server.py --check    checks that every GStreamer element any of its pipelines
                                 uses exists (deploy/setup.sh runs this), naming the Debian
                                 package of each missing one; exit 1 if any is missing
"""
import argparse
import os
import subprocess
import sys

# The Debian 12 package each element comes from, for the messages of --check and of a failed
# pre-roll (the packages themselves are installed by deploy/setup.sh, the one list of the
# suite's system dependencies). --check verifies this map against dpkg for the elements found.
ELEMENT_PACKAGES = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "videoconvert": "gstreamer1.0-plugins-base",
    "appsrc": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "timeoverlay": "gstreamer1.0-x",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "x265enc": "gstreamer1.0-plugins-bad",
    "h264parse": "gstreamer1.0-plugins-bad",
    "h265parse": "gstreamer1.0-plugins-bad",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtph265pay": "gstreamer1.0-plugins-good",
    "qtdemux": "gstreamer1.0-plugins-good",
    "rtpbin": "gstreamer1.0-plugins-good",
    "udpsrc": "gstreamer1.0-plugins-good",
    "udpsink": "gstreamer1.0-plugins-good",
    "multiudpsink": "gstreamer1.0-plugins-good",
    "filesrc": "libgstreamer1.0-0",
    "fakesink": "libgstreamer1.0-0",
    "queue": "libgstreamer1.0-0",
    "tee": "libgstreamer1.0-0",
    "funnel": "libgstreamer1.0-0",
}
# What gst-rtsp-server itself builds around a served pipeline (RTP session, UDP and TCP
# transports), and what the pre-roll ends in.
SERVER_ELEMENTS = ["rtpbin", "udpsrc", "udpsink", "multiudpsink", "appsrc", "appsink", "queue",
                   "tee", "funnel", "fakesink"]
PREROLL_TIMEOUT_S = 10


def import_gst():
    """Gst and GstRtspServer, or exit naming the Debian package that is missing."""
    try:
        import gi
    except ImportError:
        sys.exit("rtsp_server.py: no Python module gi (Debian package python3-gi)")
    for name, package in [("Gst", "gir1.2-gstreamer-1.0"),
                          ("GstRtspServer", "gir1.2-gst-rtsp-server-1.0")]:
        try:
            gi.require_version(name, "1.0")
        except ValueError as e:
            sys.exit(f"rtsp_server.py: {e} (Debian package {package})")
    from gi.repository import GLib, Gst, GstRtspServer
    return GLib, Gst, GstRtspServer


def media_launch(codec, file, fps, gop, size, bitrate, overlay="timeoverlay"):
    """The media pipeline of the /cam mount: raw elements joined by `!`, ending in pay0."""
    if file:
        return (f"filesrc location={file} ! qtdemux ! h264parse config-interval=-1 "
                f"! rtph264pay name=pay0 pt=96")
    w, h = size.split("x")
    src = (f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},"
           f"framerate={fps}/1 ! {overlay} ! videoconvert")
    if codec == "h264":
        enc = (f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate} "
               f"key-int-max={gop} ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96")
    else:
        enc = (f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate} "
               f"key-int-max={gop} ! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96")
    return f"{src} ! {enc}"


def elements_of(launch):
    """Factory names in a gst-launch description (caps filters skipped)."""
    names = []
    for part in launch.replace("(", " ").replace(")", " ").split("!"):
        words = part.split()
        if words and "/" not in words[0] and "=" not in words[0] and words[0] not in names:
            names.append(words[0])
    return names


def package_of(element):
    return ELEMENT_PACKAGES.get(element, "unknown: find the plugin with apt-file search")


def check():
    """Every element of every pipeline this server can run exists; exit 1 naming what is not."""
    _, Gst, _ = import_gst()
    Gst.init(None)
    wanted = []
    for launch in [media_launch("h264", None, 25, 25, "640x360", 800),
                   media_launch("h265", None, 25, 25, "640x360", 800),
                   media_launch("h264", "x.mp4", 25, 25, "640x360", 800)]:
        wanted += [e for e in elements_of(launch) if e not in wanted]
    wanted += [e for e in SERVER_ELEMENTS if e not in wanted]
    missing = [e for e in wanted if Gst.ElementFactory.find(e) is None]
    for e in missing:
        print(f"missing GStreamer element {e} (Debian package {package_of(e)})", file=sys.stderr)
    # Keep ELEMENT_PACKAGES honest: ask dpkg which package holds each plugin found.
    files = {}
    for e in wanted:
        f = Gst.ElementFactory.find(e)
        if f is not None and f.get_plugin() is not None and f.get_plugin().get_filename():
            files[os.path.realpath(f.get_plugin().get_filename())] = e
    try:
        out = subprocess.run(["dpkg-query", "-S", *files], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        pkg, _, path = line.partition(": ")
        e = files.get(path.strip())
        pkg = pkg.split(":")[0]
        if e and ELEMENT_PACKAGES.get(e) != pkg:
            print(f"note: element {e} comes from {pkg} here, not {package_of(e)} "
                  f"(fix ELEMENT_PACKAGES in {sys.argv[0]})", file=sys.stderr)
    if missing:
        sys.exit(1)
    print(f"ok: all {len(wanted)} GStreamer elements of the test cameras exist")


def preroll(Gst, launch):
    """Runs `launch` into a fakesink until its first buffer; None, or GStreamer's error."""
    try:
        pipeline = Gst.parse_launch(f"{launch} ! fakesink name=preroll_sink")
    except Exception as e:  # GLib.Error: "no element \"timeoverlay\"", a syntax error, …
        text = getattr(e, "message", str(e))
        for name in elements_of(launch):
            if Gst.ElementFactory.find(name) is None:
                text += f" (element {name}: Debian package {package_of(name)})"
        return text
    bus = pipeline.get_bus()
    sink = pipeline.get_by_name("preroll_sink")
    sink.set_property("signal-handoffs", True)
    got = []
    sink.connect("handoff", lambda *_: got.append(True))
    pipeline.set_state(Gst.State.PLAYING)
    error = None
    deadline_ns = PREROLL_TIMEOUT_S * Gst.SECOND
    waited = 0
    step = 20 * Gst.MSECOND
    while not got and waited < deadline_ns:
        msg = bus.timed_pop_filtered(step, Gst.MessageType.ERROR | Gst.MessageType.EOS)
        waited += step
        if msg is None:
            continue
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            src = msg.src.get_name() if msg.src else "pipeline"
            error = f"{src}: {err.message}" + (f" ({debug})" if debug else "")
        elif not got:
            error = "the stream ended before its first buffer"
        break
    pipeline.set_state(Gst.State.NULL)
    if error is None and not got:
        error = f"no buffer came out of the pipeline within {PREROLL_TIMEOUT_S} s"
    return error


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="check the GStreamer elements and exit")
    ap.add_argument("--port", type=int)
    ap.add_argument("--codec", choices=["h264", "h265"], default="h264")
    ap.add_argument("--file", help="serve this MP4 (H.264) instead of a generated stream")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--gop", type=int, default=25, help="keyframe interval in frames")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--bitrate", type=int, default=800, help="kbit/s")
    ap.add_argument("--overlay", default="timeoverlay",
                    help="the element drawn over the generated picture (default timeoverlay)")
    args = ap.parse_args()
    if args.check:
        check()
        return
    if args.port is None:
        ap.error("--port is required")

    GLib, Gst, GstRtspServer = import_gst()
    Gst.init(None)
    launch = media_launch(args.codec, args.file, args.fps, args.gop, args.size, args.bitrate,
                          args.overlay)
    error = preroll(Gst, launch)
    if error is not None:
        print(f"rtsp_server.py: the camera pipeline cannot run: {error}\n  pipeline: {launch}",
              file=sys.stderr, flush=True)
        sys.exit(3)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {launch} )")
    # A generated stream is shared by all clients; a file mount replays the file again for
    # every new client.
    factory.set_shared(not args.file)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        sys.exit(1)
    print(f"READY {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
