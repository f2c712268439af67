#!/usr/bin/env python3
"""Which frames and which pixels: OpenCV's detections on the frames presented at the sampled
times (FFmpeg's default conversion to RGB) against the same on frames sampled other ways:
FFmpeg's fps filter, and the accurate_rnd+full_chroma_int conversion the detector once used.
Recall and precision of boxes with confidence >= 0.3, same label, IoU >= 0.85 (as the
real-footage test counts them).

  sampling_study.py CFG WEIGHTS VIDEO
"""
import sys, os, subprocess, tempfile, json
import cv2, numpy as np
cfg, weights, video = sys.argv[1], sys.argv[2], sys.argv[3]
net = cv2.dnn.readNetFromDarknet(cfg, weights)
m = cv2.dnn_DetectionModel(net); m.setInputParams(size=(416,416), scale=1/255, swapRB=True)
def frames(vf, flags=None):
    d = tempfile.mkdtemp()
    cmd = ["ffmpeg","-nostdin","-v","error","-i",video,"-vf",vf,"-fps_mode","passthrough"]
    if flags: cmd += ["-sws_flags", flags]
    subprocess.run(cmd + [os.path.join(d,"%06d.png")], check=True)
    return [cv2.imread(os.path.join(d,n)) for n in sorted(os.listdir(d))]
def det(img):
    c, s, b = m.detect(img, 0.25, 0.45)
    return [(int(ci), float(si), [x, y, x+w, y+h]) for ci, si, (x,y,w,h) in zip(np.ravel(c), np.ravel(s), b)]
def iou(a,b):
    iw=max(0,min(a[2],b[2])-max(a[0],b[0])); ih=max(0,min(a[3],b[3])-max(a[1],b[1])); i=iw*ih
    u=(a[2]-a[0])*(a[3]-a[1])+(b[2]-b[0])*(b[3]-b[1])-i
    return i/u if u>0 else 0
def match(want, among):
    w=[x for x in want if x[1]>=0.3]
    return sum(any(a[0]==x[0] and iou(a[2],x[2])>=0.85 for a in among) for x in w), len(w)
sel = "select='isnan(prev_selected_t)+gte(floor(t*5+1e-6)-floor(prev_selected_t*5+1e-6)\\,1)'"
ref = [det(f) for f in frames(sel)]
print(f"{os.path.basename(video)}: reference = OpenCV on the frames presented at the sampled times, FFmpeg's default RGB")
for name, vf, flags in [("old: fps filter + accurate_rnd/full_chroma_int", "fps=5", "bicubic+accurate_rnd+full_chroma_int"),
                        ("fps filter only (frame choice)", "fps=5", None),
                        ("accurate colour only", sel, "bicubic+accurate_rnd+full_chroma_int"),
                        ("new: first frame of each interval, default colour", sel, None)]:
    other = [det(f) for f in frames(vf, flags)]
    n = min(len(ref), len(other))
    f=t=c=o=0
    for r, x in zip(ref[:n], other[:n]):
        a,b = match(r, x); f+=a; t+=b
        a,b = match(x, r); c+=a; o+=b
    print(f"  {name}: recall {f/t:.3f} ({f}/{t}), precision {c/o:.3f} ({c}/{o})")
