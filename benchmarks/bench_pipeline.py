"""Throughput of the grain input pipeline: training clips and eval views per second.

Why: data loading is the usual bottleneck of video SSL on few hosts; these figures say
how many decode + sample + augment workers a given accelerator needs, and back the
Pillow-vs-numpy resize choice made in `ssvbench/data/transforms.py`.

Run:
  python benchmarks/bench_pipeline.py            # full table
  python benchmarks/bench_pipeline.py --quick    # smaller, faster

It writes a store of synthetic videos (moving smooth colour patterns, JPEG quality 90,
the store's record format) for each frame size, then times `make_train_dataset`
(2 clips per video, full CVRL augmentation) and `make_eval_dataset` (3 temporal x 3
spatial views) for each crop size and worker count. Figures are after one warm-up
batch, on whatever CPU this runs on; the machine's core count is printed with them.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

import msgpack
import numpy as np
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image

from ssvbench.data import pipeline
from ssvbench.data import transforms


def write_store(path: str, num_videos: int, num_frames: int, height: int,
                width: int, seed: int = 0) -> str:
  """Writes `num_videos` videos of drifting smooth colour noise in the record format."""
  rng = np.random.default_rng(seed)
  writer = ArrayRecordWriter(path, "group_size:1")
  for number in range(num_videos):
    base = Image.fromarray(rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3),
                                        dtype=np.uint8))
    pattern = np.asarray(base.resize((width + 16, height + 16), Image.BICUBIC))
    velocity = rng.integers(-1, 2, size=2)
    frames = []
    for t in range(num_frames):
      dy, dx = (8 + velocity * t // 2) % 16
      buffer = io.BytesIO()
      Image.fromarray(pattern[dy:dy + height, dx:dx + width]).save(buffer, "JPEG",
                                                                   quality=90)
      frames.append(buffer.getvalue())
    writer.write(msgpack.packb({"video_id": f"bench_{number}", "label": number % 10,
                                "fps": 25.0, "frames": frames}, use_bin_type=True))
  writer.close()
  return path


def time_batches(dataset, num_batches: int) -> float:
  """Seconds for `num_batches` batches after one warm-up batch."""
  iterator = iter(dataset)
  next(iterator)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  elapsed = time.perf_counter() - start
  if hasattr(iterator, "close"):
    iterator.close()
  return elapsed


def numpy_bilinear(frames: np.ndarray, box, size: int) -> np.ndarray:
  """Vectorised (non-antialiased) bilinear crop+resize over [T, H, W, 3]: the rejected
  alternative to Pillow, kept here only to re-measure the choice."""
  _, height, width, _ = frames.shape
  left, top, right, bottom = box
  ys = np.clip(top + (np.arange(size) + 0.5) * (bottom - top) / size - 0.5, 0, height - 1)
  xs = np.clip(left + (np.arange(size) + 0.5) * (right - left) / size - 0.5, 0, width - 1)
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
  wy = (ys - y0).astype(np.float32)[:, None, None]
  wx = (xs - x0).astype(np.float32)[None, :, None]
  rows0, rows1 = frames[:, y0].astype(np.float32), frames[:, y1].astype(np.float32)
  top_row = rows0[:, :, x0] * (1 - wx) + rows0[:, :, x1] * wx
  bottom_row = rows1[:, :, x0] * (1 - wx) + rows1[:, :, x1] * wx
  return np.clip(top_row * (1 - wy) + bottom_row * wy + 0.5, 0, 255).astype(np.uint8)


def bench_resize(height: int, width: int, size: int, repeats: int = 100) -> None:
  rng = np.random.default_rng(0)
  array = rng.integers(0, 256, (8, height, width, 3), dtype=np.uint8)
  images = [Image.fromarray(frame) for frame in array]
  box = (0.1 * width, 0.05 * height, 0.9 * width, 0.95 * height)
  timings = {}
  for name, run in (("pillow", lambda: transforms.crop_and_resize(images, box, size)),
                    ("numpy", lambda: numpy_bilinear(array, box, size))):
    run()
    start = time.perf_counter()
    for _ in range(repeats):
      run()
    timings[name] = (time.perf_counter() - start) / repeats * 1e3
  print(f"resize 8x{height}x{width} -> 8x{size}x{size}: pillow {timings['pillow']:.2f} "
        f"ms/clip, numpy {timings['numpy']:.2f} ms/clip")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="fewer batches, workers 0 only")
  parser.add_argument("--videos", type=int, default=64)
  parser.add_argument("--frames", type=int, default=32)
  parser.add_argument("--batch", type=int, default=8, help="videos per batch")
  parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
  args = parser.parse_args()
  num_batches = 3 if args.quick else 8
  workers = [0] if args.quick else args.workers
  print(f"cpu cores: {os.cpu_count()}, videos {args.videos} x {args.frames} frames, "
        f"batch {args.batch}, {num_batches} timed batches")
  bench_resize(128, 171, 32)
  bench_resize(128, 171, 112)
  cases = [((40, 40), 32), ((128, 171), 32), ((128, 171), 112)]
  with tempfile.TemporaryDirectory() as directory:
    stores = {}
    for (height, width), _ in cases:
      if (height, width) not in stores:
        stores[height, width] = write_store(
            os.path.join(directory, f"train_{height}x{width}.array_record"), args.videos,
            args.frames, height, width)
    print(f"{'store':>9} {'crop':>9} {'workers':>7} {'train clips/s':>14} "
          f"{'eval videos/s':>14} {'eval views/s':>13}")
    for (height, width), crop in cases:
      for worker_count in workers:
        train = pipeline.make_train_dataset(
            stores[height, width], global_batch_size=args.batch, seed=0, num_clips=2,
            num_frames=8, frame_stride=2, crop_size=crop, worker_count=worker_count)
        train_rate = num_batches * args.batch * 2 / time_batches(train, num_batches)
        eval_batches = min(num_batches, pipeline.num_eval_batches(args.videos, args.batch)
                           - 1)
        evaluation = pipeline.make_eval_dataset(
            stores[height, width], batch_size=args.batch, num_temporal_views=3,
            num_spatial_crops=3, num_frames=8, frame_stride=2, crop_size=crop,
            worker_count=worker_count)
        eval_rate = eval_batches * args.batch / time_batches(evaluation, eval_batches)
        print(f"{height:>4}x{width:<4} {f'8x{crop}x{crop}':>9} {worker_count:>7} "
              f"{train_rate:>14.1f} {eval_rate:>14.1f} {eval_rate * 9:>13.1f}")


if __name__ == "__main__":
  main()
