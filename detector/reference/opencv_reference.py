#!/usr/bin/env python3
"""The reference implementation for Framecart's detector: OpenCV's DNN module (4.12)
running the same darknet cfg and weights through cv2.dnn_DetectionModel, set up as
darknet models are meant to be run (input scaled to the cfg's size with INTER_LINEAR,
1/255, RGB) and with darknet's default thresholds.

Commands (every result is one JSON document on standard output):

  detect  --cfg C --weights W [--confidence 0.25] [--nms 0.45] IMAGE...
      {"opencv": version, "images": [{"path", "width", "height",
        "detections": [{"class_id", "confidence", "bbox": [xmin, ymin, xmax, ymax]}]}]}
  bench   --cfg C --weights W [--threads N] [--repeat R] IMAGE...
      per-image detect latency (after one warm-up) and the total wall time:
      {"opencv", "threads", "latencies_ms": [...], "total_s"}
  video   --cfg C --weights W [--sample-fps 5] VIDEO
      the whole job on a video, as a merchant would script it: load the model, sample
      frames with `ffmpeg -vf fps=N` into a temporary folder, detect each:
      {"opencv", "threads", "frames", "detections"}
  resize  --size W H RAW SRC_W SRC_H OUT
      cv2.resize(INTER_LINEAR) of a raw interleaved 3-channel 8-bit image, written raw.

Images are read with cv2.imread (IMREAD_COLOR), which reads PPM too, so callers can
hand over exactly the pixels they decoded.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np


def model(args):
    net = cv2.dnn.readNetFromDarknet(args.cfg, args.weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    m = cv2.dnn_DetectionModel(net)
    m.setInputParams(size=(args.size, args.size), scale=1 / 255, swapRB=True)
    return m


def read(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        sys.exit(f"opencv_reference.py: cannot read image {path}")
    return img


def detect(args):
    m = model(args)
    images = []
    for path in args.images:
        img = read(path)
        class_ids, confidences, boxes = m.detect(img, args.confidence, args.nms)
        detections = [
            {
                "class_id": int(c),
                "confidence": float(s),
                # OpenCV returns integer [left, top, width, height].
                "bbox": [float(x), float(y), float(x + w), float(y + h)],
            }
            for c, s, (x, y, w, h) in zip(np.ravel(class_ids), np.ravel(confidences), boxes)
        ]
        detections.sort(key=lambda d: -d["confidence"])
        images.append({"path": path, "width": img.shape[1], "height": img.shape[0], "detections": detections})
    json.dump({"opencv": cv2.__version__, "images": images}, sys.stdout)


def bench(args):
    if args.threads > 0:
        cv2.setNumThreads(args.threads)
    m = model(args)
    images = [read(p) for p in args.images]
    m.detect(images[0], args.confidence, args.nms)  # warm-up: allocations, kernels
    latencies = []
    started = time.perf_counter()
    for _ in range(args.repeat):
        for img in images:
            t0 = time.perf_counter()
            m.detect(img, args.confidence, args.nms)
            latencies.append((time.perf_counter() - t0) * 1e3)
    total = time.perf_counter() - started
    json.dump(
        {"opencv": cv2.__version__, "threads": cv2.getNumThreads(), "latencies_ms": latencies, "total_s": total},
        sys.stdout,
    )


def video(args):
    m = model(args)
    found = 0
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", args.video, "-vf", f"fps={args.sample_fps}",
             os.path.join(folder, "%06d.png")],
            check=True,
        )
        names = sorted(os.listdir(folder))
        for name in names:
            class_ids, _, _ = m.detect(read(os.path.join(folder, name)), args.confidence, args.nms)
            found += len(np.ravel(class_ids))
    json.dump(
        {"opencv": cv2.__version__, "threads": cv2.getNumThreads(), "frames": len(names), "detections": found},
        sys.stdout,
    )


def resize(args):
    raw = np.fromfile(args.raw, dtype=np.uint8).reshape(args.src_h, args.src_w, 3)
    out = cv2.resize(raw, (args.size[0], args.size[1]), interpolation=cv2.INTER_LINEAR)
    out.tofile(args.out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("detect", "bench", "video"):
        s = sub.add_parser(name)
        s.add_argument("--cfg", required=True)
        s.add_argument("--weights", required=True)
        s.add_argument("--size", type=int, default=416, help="network input size (the cfg's width and height)")
        s.add_argument("--confidence", type=float, default=0.25)
        s.add_argument("--nms", type=float, default=0.45)
    for name in ("detect", "bench"):
        sub.choices[name].add_argument("images", nargs="+")
    sub.choices["bench"].add_argument("--threads", type=int, default=0, help="0: OpenCV's default (all cores)")
    sub.choices["bench"].add_argument("--repeat", type=int, default=1)
    sub.choices["video"].add_argument("--sample-fps", type=float, default=5.0)
    sub.choices["video"].add_argument("video")
    s = sub.add_parser("resize")
    s.add_argument("--size", type=int, nargs=2, required=True, metavar=("W", "H"))
    s.add_argument("raw")
    s.add_argument("src_w", type=int)
    s.add_argument("src_h", type=int)
    s.add_argument("out")
    args = p.parse_args()
    {"detect": detect, "bench": bench, "video": video, "resize": resize}[args.command](args)


if __name__ == "__main__":
    main()
