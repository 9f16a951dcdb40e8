r"""One stride-1 SAME convolution layer, direct vs FFT, forward + backward.

  python -m landmark_ssl.bench.convolution [--batch=64] [--size=60] \
      [--channels=8,32] [--kernels=3,5,7,9] [--repeats=3]

For each channel count ``C`` (``C -> C`` maps) and kernel size ``k``, times
the gradient (with respect to input and kernel) of a random ``batch x size
x size x C`` input through ``convolution.conv_direct`` (NHWC) and
``convolution.conv_fft`` (NCHW, the layout the landmark nets use with it),
interleaved with a 2048^2 float32 matrix product. Prints milliseconds and
"of mm": the direct convolution's FLOPs (``3 x 2 N H W k^2 C^2``, forward
and two backward products) per second over the product's best FLOP/s. The
``'auto'`` rule of ``convolution.resolve_method`` comes from this table.
"""

from __future__ import annotations

import time
from typing import Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from landmark_ssl.bench import train_step
from landmark_ssl.models import convolution

_BATCH = flags.DEFINE_integer("batch", 64, "Images per batch.")
_SIZE = flags.DEFINE_integer("size", 60, "Image side.")
_CHANNELS = flags.DEFINE_list("channels", ["8", "32"], "Channel counts C.")
_KERNELS = flags.DEFINE_list("kernels", ["3", "5", "7", "9"], "Kernel sizes.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions.")


def _grad_fn(conv):
  return jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), (0, 1)))


def _time(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def main(argv: Sequence[str]) -> None:
  del argv
  rng = np.random.default_rng(0)
  n, h = _BATCH.value, _SIZE.value
  direct = _grad_fn(convolution.conv_direct)
  fft = _grad_fn(convolution.conv_fft)
  cases = []
  for c in map(int, _CHANNELS.value):
    for k in map(int, _KERNELS.value):
      x = jnp.asarray(rng.standard_normal((n, h, h, c), np.float32))
      w = jnp.asarray(rng.standard_normal((k, k, c, c), np.float32))
      xt = jnp.transpose(x, (0, 3, 1, 2))
      jax.block_until_ready(direct(x, w))
      jax.block_until_ready(fft(xt, w))
      cases.append(dict(c=c, k=k, x=x, xt=xt, w=w, direct=[], fft=[]))
  matmul = train_step.MatmulReference(2048)
  for _ in range(_REPEATS.value):
    matmul()
    for case in cases:
      case["direct"].append(_time(direct, case["x"], case["w"]))
      case["fft"].append(_time(fft, case["xt"], case["w"]))
  matmul()
  print(f"N={n}, {h}x{h}, C -> C maps, fwd+bwd; matmul 2048^2 f32 "
        f"{matmul.best / 1e9:.1f} GFLOP/s; {jax.devices()[0].device_kind}")
  for case in cases:
    flops = 3 * 2 * n * h * h * case["k"] ** 2 * case["c"] ** 2
    row = [f"C={case['c']:4d} k={case['k']}:"]
    for name in ("direct", "fft"):
      best = min(case[name])
      row.append(f"{name} {best * 1e3:8.1f} ms ({flops / best / matmul.best:5.2f}"
                 " of mm)")
    print("  ".join(row))


if __name__ == "__main__":
  app.run(main)
