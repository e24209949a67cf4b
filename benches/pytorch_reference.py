#!/usr/bin/env python3
"""PyTorch peer of one edgessl training step, for `edgessl bench throughput --pytorch`.

Same network and recipe as the Rust learner (see /work/shared/REFERENCE.md):
- trunk: conv3x3 in->W + BN + ReLU; basic blocks W->W (s1), W->2W (s2), 2W->4W (s2); global
  average pool (W = 32 gives the 128-d reference trunk);
- projector Linear(4W,512) -> BN(affine=False) -> ReLU -> Linear(512,128);
- predictor: BYOL/SimSiam 2-layer MLP of the same shape on 128-d, or a 128x128 linear map
  without bias (trained for `linear`, set from F for `directpred`/`directcopy`);
- target: EMA copy of trunk + projector (momentum 0.996), none for SimSiam (detached online
  outputs, as edgessl does);
- SGD lr 0.05, momentum 0.9, weight decay 4e-4 on all trained parameters; both views as one
  batch; synthetic input (no data loading in the timing).

Prints one JSON object: method, images_per_sec (frames/s; a frame is two views),
peak_rss_bytes (resource.getrusage ru_maxrss), torch version and threads.

Usage: python3 benches/pytorch_reference.py --method directpred --batch 128 --threads 2

With --profile-ops the timed steps also run under torch.profiler and a per-op table (self CPU
time, ms per step) goes to stderr, to set against `edgessl bench throughput --profile-ops`
(the printed images_per_sec then includes the profiler's overhead).
"""

import argparse
import copy
import json
import resource
import sys
import time


def build(args, torch, nn):
    """Online trunk+projector, predictor, and the method's rules."""

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            s = x if self.down is None else self.down(x)
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + s)

    def mlp(d_in, hidden, d_out):
        return nn.Sequential(
            nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden, affine=False), nn.ReLU(), nn.Linear(hidden, d_out)
        )

    w = args.width
    trunk = nn.Sequential(
        nn.Conv2d(args.in_channels, w, 3, 1, 1, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        Block(w, w, 1),
        Block(w, 2 * w, 2),
        Block(2 * w, 4 * w, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    encoder = nn.Sequential(trunk, mlp(4 * w, args.projector_hidden, args.dim))
    if args.method in ("byol", "simsiam"):
        predictor = mlp(args.dim, args.predictor_hidden, args.dim)
    else:
        predictor = nn.Linear(args.dim, args.dim, bias=False)
    return encoder, predictor


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="directpred", choices=["byol", "simsiam", "linear", "directpred", "directcopy"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--projector-hidden", type=int, default=512)
    p.add_argument("--predictor-hidden", type=int, default=512)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile-ops", action="store_true", help="per-op table of the timed steps on stderr")
    args = p.parse_args()

    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": f"torch is not installed: {e}"}))
        return 2

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    encoder, predictor = build(args, torch, nn)
    set_from_f = args.method in ("directpred", "directcopy")
    simsiam = args.method == "simsiam"
    target = None if simsiam else copy.deepcopy(encoder)
    if target is not None:
        for q in target.parameters():
            q.requires_grad_(False)
    params = list(encoder.parameters())
    if set_from_f:
        predictor.weight.requires_grad_(False)
    else:
        params += list(predictor.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=4e-4)
    rho, eps = (0.5, 0.3) if args.method == "directcopy" else (0.3, 0.1)
    corr = None

    s, c = args.image_size, args.in_channels
    pool = [torch.randn(2 * args.batch, c, s, s) for _ in range(4)]

    def loss_fn(p, z):
        return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()

    def step(x):
        nonlocal corr
        z = encoder(x)
        with torch.no_grad():
            f = z.detach().double()
            d = f.T @ f / f.shape[0]
            corr = d if corr is None else rho * corr + (1 - rho) * d
        pr = predictor(z)
        if target is None:
            t = z.detach()
        else:
            with torch.no_grad():
                t = target(x)
        b = args.batch
        # Symmetrised: p of view 1 against the target of view 2 and vice versa.
        loss = loss_fn(pr[:b], t[b:]) + loss_fn(pr[b:], t[:b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if set_from_f:
            with torch.no_grad():
                if args.method == "directpred":
                    dvals, q = torch.linalg.eigh(corr)
                    sv = dvals.clamp(min=0) / dvals.max()
                    pv = (sv.sqrt() + eps).clamp(min=1e-4)
                    wp = q @ torch.diag(pv) @ q.T
                else:
                    wp = corr / corr.norm() + eps * torch.eye(corr.shape[0], dtype=corr.dtype)
                predictor.weight.copy_(wp.float())
        if target is not None:
            with torch.no_grad():
                for t_p, o_p in zip(target.parameters(), encoder.parameters()):
                    t_p.mul_(0.996).add_(o_p, alpha=0.004)
        return loss.item()

    for i in range(args.warmup):
        step(pool[i % len(pool)])
    prof = None
    if args.profile_ops:
        from torch.profiler import ProfilerActivity, profile

        prof = profile(activities=[ProfilerActivity.CPU])
        prof.__enter__()
    start = time.perf_counter()
    for i in range(args.steps):
        step(pool[i % len(pool)])
    secs = time.perf_counter() - start
    if prof is not None:
        prof.__exit__(None, None, None)
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows)
        print(f"| op | calls/step | self ms/step | share |  ({args.method}, batch {args.batch})", file=sys.stderr)
        print("|---|---|---|---|", file=sys.stderr)
        for e in rows[:25]:
            ms = e.self_cpu_time_total / 1e3 / args.steps
            print(
                f"| {e.key} | {e.count / args.steps:.0f} | {ms:.2f} | {100 * e.self_cpu_time_total / total:.1f} % |",
                file=sys.stderr,
            )
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024
    print(
        json.dumps(
            {
                "method": args.method,
                "batch": args.batch,
                "steps": args.steps,
                "secs": secs,
                "images_per_sec": args.steps * args.batch / secs,
                "peak_rss_bytes": rss_bytes,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
