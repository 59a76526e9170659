"""Throughput of `prepare_dataset`: videos/s and source MB/s, per worker count.

Preparation decodes every video once and re-encodes its frames as JPEG, so its speed
decides how long a new dataset (13k UCF101 clips, 240k Kinetics clips) takes to become
usable. This writes synthetic MPEG-4 AVI clips of UCF101's size (default 40 clips of
64 frames at 128x171, smooth moving content like real footage rather than noise,
which would inflate both codecs' cost), prepares them with 1 and 2 workers and prints
the figures. A timed `decode_video` pass separates decoding from JPEG encoding.

Per-core figures are given two ways: wall-clock rate / workers (what a dedicated
machine shows), and rate per CPU-second (user + system time of this process and its
workers), which stays meaningful on a machine shared with other jobs, where wall-clock
time includes waiting for a core. The load average is printed with them.

Run:
  python benchmarks/bench_prepare.py [--num_videos 40] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from ssvbench.data import decode
from ssvbench.data.index import DatasetIndex, VideoEntry
from ssvbench.data.prepare import prepare_dataset


def write_clip(path: Path, num_frames: int, height: int, width: int, seed: int) -> None:
  """Writes a clip of a drifting colour gradient with a moving square and mild noise."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:height, 0:width]
  colour = rng.uniform(0.5, 1.5, size=3)
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # UCF101's XviD clips average ~0.28 bits per pixel (6.5 GB, 13,320 clips of ~7 s
    # at 320x240, 25 fps); match it so MB/s compares with real data.
    stream.bit_rate = int(0.28 * width * height * 25)
    for t in range(num_frames):
      base = (rows + 2 * t) * 0.6 + (cols - t) * 0.4
      pixels = np.stack([(base * c) % 256 for c in colour], axis=-1)
      top, left = (3 * t) % (height - 24), (5 * t) % (width - 24)
      pixels[top:top + 24, left:left + 24] = 255 - pixels[top:top + 24, left:left + 24]
      pixels += rng.normal(0, 3, pixels.shape)
      frame = av.VideoFrame.from_ndarray(np.clip(pixels, 0, 255).astype(np.uint8),
                                         format="rgb24")
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def cpu_seconds() -> float:
  """User + system CPU seconds of this process and its finished child processes."""
  times = os.times()
  return times.user + times.system + times.children_user + times.children_system


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_videos", type=int, default=40)
  parser.add_argument("--num_frames", type=int, default=64)
  parser.add_argument("--height", type=int, default=128)
  parser.add_argument("--width", type=int, default=171)
  parser.add_argument("--short_side", type=int, default=None)
  parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as scratch:
    source_dir = Path(scratch) / "source"
    (source_dir / "clips").mkdir(parents=True)
    entries = []
    for number in range(args.num_videos):
      rel_path = f"clips/clip_{number:04d}.avi"
      write_clip(source_dir / rel_path, args.num_frames, args.height, args.width, number)
      entries.append(VideoEntry(f"clip_{number:04d}", rel_path, number % 2, "train",
                                f"g{number}"))
    index = DatasetIndex("bench", ["even", "odd"], entries)
    source_mb = sum(p.stat().st_size for p in source_dir.rglob("*.avi")) / 1e6
    print(f"{args.num_videos} clips of {args.num_frames} frames at "
          f"{args.height}x{args.width}, {source_mb:.1f} MB of MPEG-4 AVI; "
          f"short_side={args.short_side}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")

    start, start_cpu = time.perf_counter(), cpu_seconds()
    for entry in entries:
      decode.decode_video(source_dir / entry.rel_path, short_side=args.short_side)
    decode_seconds = time.perf_counter() - start
    decode_cpu = cpu_seconds() - start_cpu
    print(f"decode only (1 process): {args.num_videos / decode_seconds:.1f} videos/s, "
          f"{args.num_videos * args.num_frames / decode_seconds:.0f} frames/s; per "
          f"CPU-second {args.num_videos / decode_cpu:.1f} videos, "
          f"{args.num_videos * args.num_frames / decode_cpu:.0f} frames")

    for num_workers in args.workers:
      out_dir = Path(scratch) / f"out_{num_workers}"
      start, start_cpu = time.perf_counter(), cpu_seconds()
      prepare_dataset(index, source_dir, out_dir, short_side=args.short_side,
                      num_workers=num_workers, progress=False)
      seconds = time.perf_counter() - start
      cpu = cpu_seconds() - start_cpu
      stored_mb = sum(p.stat().st_size for p in out_dir.glob("*.array_record*")) / 1e6
      print(f"prepare, {num_workers} worker(s): {seconds:.2f} s, "
            f"{args.num_videos / seconds:.1f} videos/s "
            f"({args.num_videos / seconds / num_workers:.1f} per core), "
            f"{source_mb / seconds:.2f} MB/s "
            f"({source_mb / seconds / num_workers:.2f} per core); per CPU-second "
            f"{args.num_videos / cpu:.1f} videos, {source_mb / cpu:.2f} MB "
            f"({cpu:.1f} CPU-s); store {stored_mb:.1f} MB")


if __name__ == "__main__":
  main()
