#!/usr/bin/python3
"""rtsp_server.py - a loopback RTSP camera for the stream tests.

Serves an H.264 MP4 (made by the test with the ffmpeg CLI) at
rtsp://127.0.0.1:PORT/clip through GStreamer's RTSP server (python3-gi,
gir1.2-gst-rtsp-server-1.0), at the clip's own pace, over TCP or UDP as the
client asks.  Prints "ready PORT" once it listens, and runs until killed or
its standard input closes.

usage: rtsp_server.py CLIP.mp4 [PORT]   (PORT: listen there, as a restarted
camera does; default any free port)
"""
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[2] if len(sys.argv) > 2 else "0")  # default: any free port
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{sys.argv[1]}" ! qtdemux ! rtph264pay name=pay0 pt=96 )')
    factory.set_shared(False)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        sys.exit("rtsp_server: cannot listen")
    loop = GLib.MainLoop()
    print(f"ready {server.get_bound_port()}", flush=True)

    def watch_stdin():
        sys.stdin.read()  # returns when the test closes the pipe or exits
        GLib.idle_add(loop.quit)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
