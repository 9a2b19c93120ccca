#!/usr/bin/env python3
"""PyTorch baseline of `crates/diffsamp/benches/am_step.rs`: one Adjoint Matching iteration.

Re-implements diffsamp's MLP velocity (`crates/diffsamp/src/nn/mlp.rs`: hidden 128, 3 hidden
layers, 16 Fourier frequencies geometric from 1/4 to 32, length scale 1) and times one
fine-tuning iteration of Adjoint Matching on the memoryless schedule
(`crates/diffsamp/src/methods/adjoint_matching/memoryless.rs`), on the same libtorch (the torch
2.13.0 wheel the Rust build links) with the same number of intra-op threads. A frozen base
velocity v_base and a trainable residual delta_theta (same architecture); v_theta = v_base +
delta_theta. K = 40 steps, h = 1/K, t_k = k h, sigma_k = sqrt(2(1 - t_k + h)/(t_k + h)),
b_k(x) = 2 v_base(t_k, x) - x/(t_k + h), reward r(x) = -|x - c|^2/2 (c = 0.5), lambda = 1:

  rollout     X_0 ~ N(0, I), X_{k+1} = X_k + h (b_k(X_k) + 2 delta(t_k, X_k)) + sqrt(h) sigma_k eps_k
              (no noise on the last step), under no_grad; all K + 1 states kept
  adjoint     lean adjoint: a_K = lambda (X_K - c), a_k = a_{k+1} + h (a_{k+1}^T db_k/dx)(X_k),
              one vector-Jacobian product through the frozen base drift per step
  loss_adam   10 random steps with t_k <= 0.725 plus the last 10, one batched forward of delta,
              u_k = 2 delta(t_k, X_k) / sigma_k, l_i = sum_k |u_k + sigma_k a_k|^2, clipped at a
              running 0.99-quantile (EMA 0.9), mean, backward, Adam (lr 1e-4)
  iteration   all of the above, the number compared with the Rust bench

for state dimensions 2 and 50 at batch 512. Prints one JSON line per measurement (median
seconds and all samples). Run through benches/pytorch/compare_am.sh, or after
`source .deps/bench-python/env.sh` (see setup.sh).
"""

import argparse
import ctypes
import json
import math
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

STEPS = 40
N_RANDOM, N_LAST, T_RANDOM_MAX = 10, 10, 0.725
CLIP_QUANTILE, CLIP_EMA = 0.99, 0.9
LAMBDA, REWARD_CENTRE = 1.0, 0.5


def uniform_linear(inputs, outputs, fan_in, bias):
    """nn.Linear with W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (diffsamp's `linear`)."""
    layer = nn.Linear(inputs, outputs, bias=bias)
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
        if bias:
            layer.bias.uniform_(-bound, bound)
    return layer


def xavier_linear(inputs, outputs, gain):
    layer = nn.Linear(inputs, outputs, bias=False)
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    return layer


class Mlp(nn.Module):
    """Same structure, parameter names and shapes as diffsamp::nn::Mlp."""

    def __init__(self, dim, hidden=128, n_layers=3, n_frequencies=16, max_frequency=32.0,
                 length_scale=1.0):
        super().__init__()
        f2 = 2 * n_frequencies
        self.time_in = uniform_linear(f2, hidden, f2, True)
        self.time_out = uniform_linear(hidden, hidden, hidden, True)
        self.input = uniform_linear(dim, hidden, dim, True)
        self.layers = nn.ModuleList(
            uniform_linear(hidden, hidden, hidden, True) for _ in range(n_layers)
        )
        self.output = xavier_linear(hidden, dim, 1e-3)
        if n_frequencies == 1:
            freqs = [max_frequency]
        else:
            lo, hi = math.log(0.25), math.log(max_frequency)
            freqs = [
                math.exp(lo + (hi - lo) * k / (n_frequencies - 1)) for k in range(n_frequencies)
            ]
        # 2 pi f_k in f64, then f32 (as the Rust side).
        w = torch.tensor([2.0 * math.pi * f for f in freqs], dtype=torch.float32)
        self.register_buffer("omega", w, persistent=False)
        self.length_scale = length_scale

    def time_features(self, t):
        arg = t.float().unsqueeze(1) * self.omega.unsqueeze(0)  # [B, F]
        return torch.cat([arg.sin(), arg.cos()], 1)

    def forward(self, t, x):
        e = self.time_out(F.silu(self.time_in(self.time_features(t))))
        if self.length_scale != 1.0:
            x = x / self.length_scale
        z = F.silu(self.input(x) + e)
        for layer in self.layers:
            z = F.silu(layer(z))
        return self.output(z)


class AdjointMatching:
    """State of the fine-tuning: base, residual, optimiser, running clip threshold."""

    def __init__(self, dim, batch, steps=STEPS):
        self.dim, self.batch, self.steps = dim, batch, steps
        self.h = 1.0 / steps
        self.times = [k * self.h for k in range(steps + 1)]
        self.sigmas = [
            math.sqrt(2.0 * (1.0 - t + self.h) / (t + self.h)) for t in self.times[:steps]
        ]
        self.base = Mlp(dim)
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.residual = Mlp(dim)
        self.opt = torch.optim.Adam(
            self.residual.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8
        )
        self.centre = torch.full((dim,), REWARD_CENTRE)
        self.clip = None  # running clip threshold
        # Steps eligible for the random half of the subset: t_k <= 0.725, not among the last ones.
        self.early = [
            k for k in range(steps - N_LAST) if self.times[k] <= T_RANDOM_MAX + 1e-12
        ]
        self.t_full = [torch.full((batch,), t) for t in self.times]

    def base_drift(self, k, x):
        """b_k(x) = 2 v_base(t_k, x) - x / (t_k + h)."""
        return 2.0 * self.base(self.t_full[k], x) - x / (self.times[k] + self.h)

    def rollout(self):
        """X_0 .. X_K [batch, dim] under the fine-tuned process, without gradients."""
        with torch.no_grad():
            x = torch.randn(self.batch, self.dim)
            states = [x]
            sqrt_h = math.sqrt(self.h)
            for k in range(self.steps):
                t = self.t_full[k]
                drift = self.base_drift(k, x) + 2.0 * self.residual(t, x)
                x = x + self.h * drift
                if k + 1 < self.steps:
                    x = x + torch.randn_like(x) * (sqrt_h * self.sigmas[k])
                states.append(x)
        return states

    def adjoint(self, states):
        """Lean adjoint a_0 .. a_K (detached) through the frozen base drift."""
        a = LAMBDA * (states[-1] - self.centre)  # -lambda grad r(X_K)
        adj = [None] * (self.steps + 1)
        adj[-1] = a
        for k in range(self.steps - 1, -1, -1):
            x = states[k].detach().requires_grad_(True)
            with torch.enable_grad():
                b = self.base_drift(k, x)
                (g,) = torch.autograd.grad(b, x, grad_outputs=a)
            a = a + self.h * g
            adj[k] = a
        return adj

    def subset(self):
        """10 random steps with t_k <= 0.725 plus the last 10, sorted."""
        pick = torch.randperm(len(self.early))[:N_RANDOM].tolist()
        chosen = sorted(self.early[i] for i in pick)
        return chosen + list(range(self.steps - N_LAST, self.steps))

    def loss_step(self, states, adj):
        """Batched adjoint-matching loss on the step subset, clipping, Adam step."""
        ks = self.subset()
        n, b = len(ks), self.batch
        t = torch.cat([self.t_full[k] for k in ks])
        x = torch.cat([states[k] for k in ks])
        a = torch.stack([adj[k] for k in ks])  # [n, B, d]
        sig = torch.tensor([self.sigmas[k] for k in ks]).view(n, 1, 1)
        u = 2.0 * self.residual(t, x).view(n, b, self.dim) / sig
        per_sample = (u + sig * a).square().sum(-1).sum(0)  # [B]
        with torch.no_grad():
            q = torch.quantile(per_sample.detach(), CLIP_QUANTILE).item()
        self.clip = q if self.clip is None else CLIP_EMA * self.clip + (1.0 - CLIP_EMA) * q
        loss = per_sample.clamp(max=self.clip).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach()

    def iteration(self):
        states = self.rollout()
        adj = self.adjoint(states)
        return self.loss_step(states, adj)


def time_it(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--dims", default="2,50", help="comma-separated state dimensions")
    p.add_argument("--reps", type=int, default=10, help="timed repetitions of each measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions before timing")
    p.add_argument("--only", default="iteration,rollout,adjoint,loss_adam")
    p.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="apply the glibc settings of diffsamp::nn::alloc::retain_freed_memory (as the Rust bench does)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    if args.retain_freed_memory:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
        assert ok, "mallopt failed"
    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    common = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "retain_freed_memory": args.retain_freed_memory,
    }

    def emit(part, samples, **extra):
        line = dict(common, bench="am_iteration", part=part, **extra)
        line["median_s"] = statistics.median(samples)
        line["samples_s"] = [round(s, 6) for s in samples]
        print(json.dumps(line), flush=True)

    for dim in map(int, args.dims.split(",")):
        torch.manual_seed(args.seed)
        am = AdjointMatching(dim, args.batch)
        n_params = sum(p.numel() for p in am.residual.parameters())
        shape = dict(dim=dim, batch=args.batch, steps=am.steps)
        print(json.dumps(dict(common, bench="params", dim=dim, count=n_params)), flush=True)
        if "iteration" in only:
            s = time_it(am.iteration, args.warmup, args.reps)
            loss = am.iteration().item()
            emit("iteration", s, **shape, loss=loss, clip=am.clip)
        # The parts, on states and adjoints of the current (fine-tuned) residual.
        states = am.rollout()
        adj = am.adjoint(states)
        if "rollout" in only:
            emit("rollout", time_it(am.rollout, args.warmup, args.reps), **shape)
        if "adjoint" in only:
            emit("adjoint", time_it(lambda: am.adjoint(states), args.warmup, args.reps), **shape)
        if "loss_adam" in only:
            s = time_it(lambda: am.loss_step(states, adj), args.warmup, args.reps)
            emit("loss_adam", s, **shape, subset=N_RANDOM + N_LAST)


if __name__ == "__main__":
    sys.exit(main())
