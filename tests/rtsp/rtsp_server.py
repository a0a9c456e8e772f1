#!/usr/bin/python3
"""A real RTSP server for the tests: a video file, looped, served as a live H.264 stream.

Runs under the SYSTEM Python (/usr/bin/python3) with Debian's GStreamer bindings
(python3-gst-1.0, gir1.2-gst-rtsp-server-1.0), not under the project's venv: the tests start
it as a subprocess (tests/rtsp/fixtures.py). Like an IP camera, the stream is live: one
pipeline decodes the file at its own frame rate, looping seamlessly (segment seeks), and feeds
every client's encoder (x264enc, one slice per frame, 1 s GOP, SPS/PPS repeated at every key
frame), whether or not anyone watches. Clients may use RTP over TCP (interleaved)
or UDP; ``--protocols`` restricts that. ``--user``/``--password`` require basic or digest
authentication; anything else gets 401.

On stdout, once the port is bound: ``READY {"url": ..., "port": ..., "width": ..., ...}``
(the URL without credentials). SIGTERM or SIGINT: the pipelines are stopped and the process
exits 0. A startup failure prints ``ERROR <why>`` on stderr and exits 1; ``--check`` only tests
that every GStreamer element and binding is here (exit 0) or names what is missing (exit 3).

    /usr/bin/python3 tests/rtsp/rtsp_server.py --source models/ir/samples/demo.avi --port 0
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

ELEMENTS = ("filesrc", "decodebin", "videoconvert", "appsink", "appsrc", "queue", "x264enc", "rtph264pay")
APT_HINT = (
    "apt-get install python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly (make deps does it)"
)


def fail(msg: str, code: int = 1) -> None:
    print(f"ERROR {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def load_gst():
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtsp", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
    except (ImportError, ValueError) as exc:
        fail(f"GStreamer Python bindings missing ({exc}): {APT_HINT}", 3)
    Gst.init(None)
    return GLib, Gst, GstRtsp, GstRtspServer


def check(Gst) -> None:
    missing = [e for e in ELEMENTS if Gst.ElementFactory.find(e) is None]
    if missing:
        fail(f"GStreamer elements missing: {', '.join(missing)}: {APT_HINT}", 3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--source", help="video file to serve, looped")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed in READY)")
    p.add_argument("--path", default="/cam", help="mount point (default /cam)")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--auth", choices=("basic", "digest"), default="basic")
    p.add_argument("--protocols", default="tcp,udp", help="comma list of tcp, udp (default both)")
    p.add_argument("--bitrate", type=int, default=1500, help="kbit/s (default 1500)")
    p.add_argument("--check", action="store_true", help="only check the bindings and elements")
    args = p.parse_args(argv)
    if not args.check and not args.source:
        p.error("--source is required")
    if bool(args.user) != bool(args.password):
        p.error("--user and --password go together")
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    bad = set(args.protocols.split(",")) - {"tcp", "udp"}
    if bad or not args.protocols:
        p.error(f"--protocols: unknown {', '.join(sorted(bad)) or '(empty)'}")
    return args


class LoopingFile:
    """Decodes the file to raw I420, paced at its frame rate, looping with segment seeks, and
    hands every frame to the appsrcs (one per RTSP media) registered at that moment."""

    def __init__(self, Gst, path: str):
        self.Gst = Gst
        self.pipeline = Gst.parse_launch(
            "filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=I420 "
            "! appsink name=sink sync=false max-buffers=2 emit-signals=true"
        )
        self.pipeline.get_by_name("file").set_property("location", path)
        self.sink = self.pipeline.get_by_name("sink")
        self.sink.connect("new-sample", self._on_sample)
        self.caps = None
        self.fps = 25.0
        self.frames = 0
        self._targets: dict = {}  # appsrc -> the last pts pushed
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._period = 0.0
        self._due = 0.0

    def start(self, timeout_s: float = 10.0) -> None:
        Gst = self.Gst
        if self.pipeline.set_state(Gst.State.PAUSED) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError("the decode pipeline does not start")
        ok, _, _ = self.pipeline.get_state(int(timeout_s * Gst.SECOND))
        if ok != Gst.StateChangeReturn.SUCCESS:
            raise RuntimeError(self._bus_error() or "the file did not preroll (not a video?)")
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT
        if not self.pipeline.seek_simple(Gst.Format.TIME, flags, 0):
            raise RuntimeError("the file is not seekable, so it cannot loop")
        self.pipeline.set_state(Gst.State.PLAYING)
        if not self._first.wait(timeout_s):
            raise RuntimeError(self._bus_error() or "no frame decoded")

    def _bus_error(self) -> str | None:
        msg = self.pipeline.get_bus().pop_filtered(self.Gst.MessageType.ERROR)
        return msg.parse_error()[0].message if msg else None

    def on_bus(self, _bus, msg) -> bool:
        Gst = self.Gst
        if msg.type == Gst.MessageType.SEGMENT_DONE:  # the end of a pass: go on seamlessly
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.SEGMENT, 0)
        elif msg.type == Gst.MessageType.ERROR:
            print(f"ERROR decode pipeline: {msg.parse_error()[0].message}", file=sys.stderr, flush=True)
        return True

    def _on_sample(self, sink):
        Gst = self.Gst
        sample = sink.emit("pull-sample")
        if self.caps is None:
            self.caps = sample.get_caps()
            ok, num, den = self.caps.get_structure(0).get_fraction("framerate")
            self.fps = num / den if ok and num > 0 and den > 0 else 25.0
            self._period, self._due = 1.0 / self.fps, time.monotonic()
        self.frames += 1
        self._first.set()
        # paced here, at the clip's rate, across loops too (this blocks the decode thread,
        # which is what holds it back)
        self._due += self._period
        time.sleep(max(0.0, self._due - time.monotonic()))
        self._due = max(self._due, time.monotonic() - self._period)  # no catch-up burst
        with self._lock:
            targets = list(self._targets.items())
        for src, last in targets:
            # each session's pipeline has its own running time: stamp the frame with it, and
            # never twice the same (FFmpeg's RTP reader would merge two frames into one)
            clock, base = src.get_clock(), src.get_base_time()
            if clock is None:
                continue  # not playing yet
            pts = max(clock.get_time() - base, last + Gst.MSECOND)
            buf = sample.get_buffer().copy_deep()  # not the decoder pool's memory
            buf.pts, buf.dts, buf.duration = pts, Gst.CLOCK_TIME_NONE, Gst.CLOCK_TIME_NONE
            with self._lock:
                if src in self._targets:
                    self._targets[src] = pts
            src.emit("push-buffer", buf)
        return Gst.FlowReturn.OK

    def add(self, src) -> None:
        with self._lock:
            self._targets[src] = -1

    def remove(self, src) -> None:
        with self._lock:
            self._targets.pop(src, None)

    def stop(self) -> None:
        self.pipeline.set_state(self.Gst.State.NULL)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    GLib, Gst, GstRtsp, GstRtspServer = load_gst()
    check(Gst)
    if args.check:
        print("OK")
        return 0

    feed = LoopingFile(Gst, args.source)
    loop = GLib.MainLoop()
    feed.pipeline.get_bus().add_signal_watch()
    feed.pipeline.get_bus().connect("message", feed.on_bus)
    try:
        feed.start()
    except (RuntimeError, GLib.Error) as exc:
        fail(f"cannot decode {args.source}: {exc}")
    s = feed.caps.get_structure(0)
    width, height = s.get_value("width"), s.get_value("height")
    fps = feed.fps
    gop = max(1, round(fps))
    # one slice per frame: with x264's sliced threads, rtph264pay repeats SPS/PPS before each
    # IDR slice and FFmpeg's RTSP reader then splits the key frame in two (corrupt frames)
    encoder = (
        "x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false "
        f"bitrate={args.bitrate} key-int-max={gop} ! video/x-h264,profile=baseline"
    )
    launch = (
        "( appsrc name=src is-live=true format=time "
        f"! queue max-size-buffers=4 leaky=downstream ! {encoder} "
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    # one media (encoder) per client, all fed by the one decoding pipeline: a shared media
    # answers 503 for a moment after a client's SETUP was refused (GStreamer 1.22)
    factory.set_shared(False)
    lower = {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}
    protocols = GstRtsp.RTSPLowerTrans(0)
    for name in args.protocols.split(","):
        protocols |= lower[name]
    factory.set_protocols(protocols)

    def on_configure(_factory, media):
        src = media.get_element().get_by_name_recurse_up("src")
        src.set_property("caps", feed.caps)
        feed.add(src)
        media.connect("unprepared", lambda _m: feed.remove(src))

    factory.connect("media-configure", on_configure)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        if args.auth == "digest":
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role("user")
        perms.add_permission_for_role("user", "media.factory.access", True)
        perms.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        feed.stop()
        fail(f"cannot listen on {args.host}:{args.port} (port in use?)")
    port = server.get_bound_port()

    def quit_(*_a) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_)
    ready = {
        "url": f"rtsp://{args.host}:{port}{args.path}",
        "port": port,
        "width": width,
        "height": height,
        "fps": round(fps, 3),
        "protocols": args.protocols,
        "auth": args.auth if args.user else None,
    }
    print("READY " + json.dumps(ready), flush=True)
    loop.run()
    feed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
