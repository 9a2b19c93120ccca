#!/usr/bin/env python3
"""PyTorch baseline of `crates/diffsamp/benches/egnn_step.rs`.

Re-implements diffsamp's EGNN control network (`crates/diffsamp/src/nn/egnn.rs`: LJ-13, 5
layers, hidden 128, sum aggregation) operation for operation, and times the same work as the
Rust bench on the same libtorch (the torch 2.13.0 wheel the Rust build links) with the same
number of intra-op threads:

  forward     v(t, x) at batch 512 without gradients
  ram_step    one Adjoint Sampling training step: t ~ U[0, 1], X_t from the base bridge given
              X_1 (geometric schedule, sigma_min 1e-3, sigma_max 2, noise COM-free), forward,
              mean (v + a)^2, backward, Adam (lr 1e-4)
  rollout     Euler-Maruyama from X_0 = 0 on linspace(0, 1, steps + 1) under no_grad,
              x <- x + sigma^2 v dt + sigma sqrt(dt) eps, COM removed after every step
  bare_matmul the pair matmuls of one forward (2 x 5 products [512*156, 128] x [128, 128]) alone

Prints one JSON line per measurement (median seconds and all samples). Run through
benches/pytorch/compare.sh, or after `source .deps/bench-python/env.sh` (see setup.sh).
"""

import argparse
import ctypes
import json
import math
import statistics
import struct
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

N_PARTICLES, SPATIAL = 13, 3
DIM = N_PARTICLES * SPATIAL


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


class EgnnLayer(nn.Module):
    def __init__(self, h, last):
        super().__init__()
        fan = 2 * h + 2
        self.edge_src = uniform_linear(h, h, fan, True)
        self.edge_dst = uniform_linear(h, h, fan, False)
        self.edge_geom = uniform_linear(2, h, fan, False)
        self.edge_out = uniform_linear(h, h, h, True)
        self.attention = uniform_linear(h, 1, h, True)
        self.coord_hidden = uniform_linear(h, h, h, True)
        self.coord_out = xavier_linear(h, 1, 1e-3)
        self.has_node = not last
        if self.has_node:
            self.node_hidden = uniform_linear(2 * h, h, 2 * h, True)
            self.node_out = uniform_linear(h, h, h, True)


class Egnn(nn.Module):
    """Same structure, parameter names and shapes as diffsamp::nn::Egnn (sum aggregation)."""

    def __init__(self, n=N_PARTICLES, spatial=SPATIAL, hidden=128, n_layers=5, coords_range=3.0):
        super().__init__()
        self.n, self.spatial, self.coords_range = n, spatial, coords_range
        self.embedding = uniform_linear(1, hidden, 1, True)
        self.layers = nn.ModuleList(
            EgnnLayer(hidden, k + 1 == n_layers) for k in range(n_layers)
        )
        index = [j for i in range(n) for j in range(n) if j != i]
        self.register_buffer("index", torch.tensor(index, dtype=torch.int64), persistent=False)

    def gather(self, v):
        """[B, n, F] -> neighbours' values [B, n, n - 1, F] (no self pairs)."""
        b, _, f = v.shape
        return v.index_select(1, self.index).view(b, self.n, self.n - 1, f)

    def diff(self, x):
        return x.unsqueeze(2) - self.gather(x)

    def forward(self, t, x):
        shape = x.shape
        n, s = self.n, self.spatial
        x0 = x.view(-1, n, s)
        b = x0.shape[0]
        kind = x.dtype
        scale = 1.0  # sum aggregation
        a = self.diff(x0).square().sum(-1, keepdim=True, dtype=kind)
        h = self.embedding(t.to(kind).view(b, 1, 1).expand(b, n, 1))
        xs = x0
        for layer in self.layers:
            diff = self.diff(xs)
            radial = diff.square().sum(-1, keepdim=True, dtype=kind)
            src = layer.edge_src(h).unsqueeze(2)
            dst = self.gather(layer.edge_dst(h))
            geom = layer.edge_geom(torch.cat([radial, a], -1))
            m = F.silu(layer.edge_out(F.silu(geom + dst + src)))
            m = m * torch.sigmoid(layer.attention(m))
            norm = (radial + 1e-30).sqrt() + 1.0
            phi = torch.tanh(layer.coord_out(F.silu(layer.coord_hidden(m)))) * self.coords_range
            trans = (diff / norm * phi).sum(2, dtype=kind)
            xs = xs + trans * scale
            if layer.has_node:
                agg = m.sum(2, dtype=kind) * scale
                upd = layer.node_out(F.silu(layer.node_hidden(torch.cat([h, agg], -1))))
                h = h + upd
        return remove_com(xs - x0).view(shape)


def remove_com(x):
    v = x.view(-1, N_PARTICLES, SPATIAL)
    return (v - v.mean(1, keepdim=True)).view(x.shape)


class Geometric:
    """sigma(t) = sigma_min r^(1-t) sqrt(2 ln r), h2(t) = sigma_max^2 (1 - r^(-2t))."""

    def __init__(self, sigma_min=1e-3, sigma_max=2.0):
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.ln_r = math.log(sigma_max / sigma_min)

    def sigma(self, t):
        return self.sigma_min * math.exp((1.0 - t) * self.ln_r) * math.sqrt(2.0 * self.ln_r)

    def bridge(self, t):
        """(mean coefficient, standard deviation) of X_t | X_1, elementwise on a tensor t."""
        s2 = self.sigma_max**2
        h2 = -s2 * torch.expm1(-2.0 * t * self.ln_r)
        alpha2 = -s2 * torch.exp(-2.0 * t * self.ln_r) * torch.expm1(-2.0 * (1.0 - t) * self.ln_r)
        h2_1 = s2 - self.sigma_min**2
        return h2 / h2_1, (h2 * alpha2 / h2_1).clamp(min=0.0).sqrt()


def ram_loss(net, schedule, x1, adjoint):
    """Reciprocal Adjoint Matching loss (diffsamp's `ram_loss`): bridge draw, then MSE."""
    with torch.no_grad():
        b = x1.shape[0]
        t = torch.rand(b, dtype=torch.float64)
        coef, std = schedule.bridge(t)
        eps = remove_com(torch.randn_like(x1))
        x_t = x1 * coef.to(x1.dtype).view(-1, 1) + eps * std.to(x1.dtype).view(-1, 1)
        t = t.to(x1.dtype)
    v = net(t, x_t)
    return (v + adjoint).square().mean()


def rollout(net, schedule, batch, steps):
    times = [k / steps for k in range(steps + 1)]
    with torch.no_grad():
        x = torch.zeros(batch, DIM)
        for k in range(steps):
            t, dt = times[k], times[k + 1] - times[k]
            sigma = schedule.sigma(t)
            v = net(torch.full((batch,), t), x)
            eps = torch.randn(batch, DIM)
            x = x + v * (sigma * sigma * dt) + eps * (sigma * math.sqrt(dt))
            x = remove_com(x)
    return x


def forward_flops(batch, hidden=128, n_layers=5, n=N_PARTICLES):
    """Multiply-add flops (2 per MAC) of every linear layer of one forward pass."""
    h, pairs, nodes = hidden, batch * n * (n - 1), batch * n
    per_layer = 2 * (2 * nodes * h * h + pairs * (2 * h + 2 * h * h + 2 * h))
    node = 2 * nodes * (2 * h * h + h * h)
    return 2 * nodes * h + n_layers * per_layer + (n_layers - 1) * node


def time_it(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def read_safetensors(path):
    """{name: tensor} from a safetensors file (f32/i64 only), without the safetensors package."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    kinds = {"F32": torch.float32, "I64": torch.int64, "F64": torch.float64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        lo, hi = meta["data_offsets"]
        t = torch.frombuffer(bytearray(data[lo:hi]), dtype=kinds[meta["dtype"]])
        out[name] = t.view(meta["shape"]).clone()
    return out


def check_against(net, path):
    """Loads the Rust network's parameters and compares outputs on the Rust input."""
    tensors = read_safetensors(path)
    params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    mine = dict(net.named_parameters())
    if set(params) != set(mine):
        raise SystemExit(f"parameter names differ: {sorted(set(params) ^ set(mine))}")
    for name, value in params.items():
        if tuple(value.shape) != tuple(mine[name].shape):
            raise SystemExit(f"{name}: rust {tuple(value.shape)} vs python {tuple(mine[name].shape)}")
    saved = {k: v.detach().clone() for k, v in mine.items()}
    with torch.no_grad():
        for name, value in params.items():
            mine[name].copy_(value)
        v = net(tensors["input.t"], tensors["input.x"])
        ref = tensors["output.v"]
        err = (v - ref).abs().max().item()
        scale = ref.abs().max().item()
        for name, value in saved.items():
            mine[name].copy_(value)
    return err, scale


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--rollout-batch", type=int, default=16)
    p.add_argument("--rollout-steps", type=int, default=1000)
    p.add_argument("--reps", type=int, default=10, help="timed repetitions (forward, step, matmul)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repetitions before timing")
    p.add_argument("--rollout-reps", type=int, default=3)
    p.add_argument("--only", default="forward,ram_step,bare_matmul,rollout")
    p.add_argument("--check", metavar="SAFETENSORS", help="weights + I/O exported by the Rust bench")
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
    torch.manual_seed(args.seed)
    only = set(args.only.split(","))
    common = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "retain_freed_memory": args.retain_freed_memory,
    }

    def emit(bench, samples, **extra):
        line = dict(common, bench=bench, **extra)
        line["median_s"] = statistics.median(samples)
        line["samples_s"] = [round(s, 6) for s in samples]
        print(json.dumps(line), flush=True)

    net = Egnn()
    n_params = sum(p.numel() for p in net.parameters())
    print(json.dumps(dict(common, bench="params", count=n_params)), flush=True)
    if args.check:
        err, scale = check_against(net, args.check)
        print(json.dumps(dict(common, bench="check", max_abs_diff=err, max_abs_output=scale)), flush=True)

    b = args.batch
    x = torch.randn(b, DIM)
    t = torch.rand(b)
    schedule = Geometric()
    flops = forward_flops(b)
    pair_flops = 2 * b * N_PARTICLES * (N_PARTICLES - 1) * 128 * 128 * 2 * 5
    if "forward" in only:
        with torch.no_grad():
            s = time_it(lambda: net(t, x), args.warmup, args.reps)
        emit("forward", s, batch=b, linear_flops=flops)
    if "ram_step" in only:
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        x1 = remove_com(torch.randn(b, DIM))
        adjoint = remove_com(torch.randn(b, DIM))

        def step():
            loss = ram_loss(net, schedule, x1, adjoint)
            opt.zero_grad()
            loss.backward()
            opt.step()

        s = time_it(step, args.warmup, args.reps)
        emit("ram_step", s, batch=b, linear_flops=3 * flops)
    if "bare_matmul" in only:
        a = torch.randn(b * N_PARTICLES * (N_PARTICLES - 1), 128)
        w = torch.randn(128, 128)

        def mm():
            for _ in range(2 * 5):
                a.matmul(w)

        s = time_it(mm, args.warmup, args.reps)
        emit("bare_matmul", s, flops=pair_flops)
    if "rollout" in only and args.rollout_reps > 0:
        # Warm-up: a short rollout (allocator, kernels), then full 1000-step rollouts.
        rollout(net, schedule, args.rollout_batch, 5)
        s = time_it(
            lambda: rollout(net, schedule, args.rollout_batch, args.rollout_steps),
            0,
            args.rollout_reps,
        )
        emit("rollout", s, batch=args.rollout_batch, steps=args.rollout_steps)


if __name__ == "__main__":
    sys.exit(main())
