"""clipkit.py - video clips of the shared images for the stream tests and
bench/stream_bench.py, made with the ffmpeg CLI (Debian's ffmpeg, libx264).

make_clip pans a window of the picture down the scaled image (pan=True), so
that what is detected moves from frame to frame and its tracks move with it,
or holds it still (pan=False: every frame is the same picture, so a frame the
server shows can be compared with one decoded here).  H.264 baseline in MP4,
a key frame every second, which the RTSP harness (tests/harness/rtsp_server.py)
and libavformat both read.
"""
import shutil
import subprocess


def have_ffmpeg():
    return shutil.which("ffmpeg") is not None


def make_clip(image, out, seconds, width, height, fps=30, pan=True):
    """out: an MP4 of `seconds` at `fps` frames/s, width x height, from image."""
    if pan:
        # scale to the clip's width, then a window of the clip's height that
        # moves down and back up again (a triangle wave, 4 s per sweep)
        view = (f"scale={width}:-2,crop={width}:{height}:0:"
                f"'(ih-{height})*abs(mod(t/4,2)-1)'")
    else:
        view = f"scale={width}:{height}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-loop", "1", "-framerate", str(fps), "-i", str(image),
                    "-t", str(seconds), "-vf", f"{view},format=yuv420p", "-c:v", "libx264", "-profile:v", "baseline",
                    "-preset", "veryfast", "-g", str(fps), "-r", str(fps), str(out)],
                   check=True, timeout=300)
    return out


def first_frame_png(clip, out):
    """The clip's first frame as ffmpeg decodes it (RGB PNG)."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip), "-frames:v", "1", str(out)],
                   check=True, timeout=60)
    return out
