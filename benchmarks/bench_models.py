"""Model benchmark: tinyvision vs PyTorch CPU, one training pass (forward + backward), interleaved.

    python benchmarks/bench_models.py [--quick] [--cases resnet18,resnet50] [--batch N] [--size S]
                                      [--repeats R] [--json out.json]

Each case builds the tinyvision model and its PyTorch twin with the same weights (copied from
torch), in train mode, float32, and times one pass on (N, 3, S, S) — (8, 3, 128, 128) by default:
forward, then backward of sum(output * gy) for a fixed random gy (every parameter's gradient and
the input's). The two sides run alternately in one process (see _harness.py), and each reports
its median. Printed per case: both medians, the speed ratio torch_ms / tinyvision_ms (> 1:
tinyvision faster), tinyvision's peak memory for one pass (tracemalloc: NumPy's allocations,
which hold every tensor tinyvision makes) and the process's peak RSS so far (PyTorch's allocator
is invisible to tracemalloc; RSS covers both). Before the table: the BLAS library NumPy calls and
the kernel it chose (threadpoolctl), which OPENBLAS_CORETYPE, if set, forces. For a fair run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_models.py

Adding a model (RetinaNet, Unet, ...): write a function that returns a :class:`ModelCase` and
decorate it with ``@register("name")``; ``ModelCase.tv_output`` / ``torch_output`` turn a model's output
(a dict or a tuple of heads) into one tensor per framework when it is not one already, or
``ModelCase.steps = (step_tv, step_torch)`` replaces the whole pass (a detector's loss step).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

import tinyvision as tv  # noqa: E402

try:
    import torch
except ImportError:  # tinyvision columns only
    torch = None


@dataclass
class ModelCase:
    """One model, built twice with the same weights. ``torch_model`` is None without PyTorch."""

    tv_model: object
    torch_model: Optional[object]
    input_shape: tuple
    # model output -> the tensor whose sum(. * gy) is differentiated (identity for a plain tensor)
    tv_output: Callable = staticmethod(lambda out: out)
    torch_output: Callable = staticmethod(lambda out: out)
    # or a whole training step per side (e.g. a detector's forward with targets + its losses'
    # backward): two zero-argument callables; then tv_model/torch_model/outputs are not called
    steps: Optional[tuple] = None


CASES: dict = {}


def register(name):
    """Decorator: ``@register("unet") def unet_case(batch, size): return ModelCase(...)``."""
    def wrap(fn):
        CASES[name] = fn
        return fn
    return wrap


def _copy_weights(tv_model, torch_model):
    tv_model.load_state_dict({k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()})


def _resnet_case(name, batch, size):
    import tinyvision.models as tvm

    tv_model = getattr(tvm, name)(num_classes=1000).train()
    torch_model = None
    if torch is not None:
        import torchvision

        torch_model = getattr(torchvision.models, name)(weights=None, num_classes=1000).train()
        _copy_weights(tv_model, torch_model)
    return ModelCase(tv_model, torch_model, (batch, 3, size, size))


@register("resnet18")
def resnet18_case(batch, size):
    return _resnet_case("resnet18", batch, size)


@register("resnet50")
def resnet50_case(batch, size):
    return _resnet_case("resnet50", batch, size)


@register("unet")
def unet_case(batch, size):
    """smp's Unet (resnet18 encoder, depth 4, decoder (64, 32, 16, 16), 6 classes) vs
    tinyvision.models.segmentation.Unet with smp's weights (added by helper F)."""
    from tinyvision.models.segmentation import Unet

    kwargs = dict(encoder_name="resnet18", encoder_depth=4, decoder_channels=(64, 32, 16, 16), classes=6)
    tv_model = Unet(**kwargs).train()
    torch_model = None
    if torch is not None:
        import segmentation_models_pytorch as smp

        torch_model = smp.Unet(encoder_weights=None, **kwargs).train()
        _copy_weights(tv_model, torch_model)
    return ModelCase(tv_model, torch_model, (batch, 3, size, size))


@register("unet2015")
def unet2015_case(batch, size):
    """The segment task's model (tinyvision train segment / the demo): the paper's U-Net made
    small (base 12 channels, depth 4, padded convs, BatchNorm, 6 classes) vs its PyTorch twin
    (tinyvision.testing.torch_twins) with the same weights. The task trains it at batch 16, 64 px."""
    from tinyvision.models.segmentation import UNet2015

    kwargs = dict(base_channels=12, depth=4, padding=1, batch_norm=True)
    tv_model = UNet2015(3, 6, **kwargs).train()
    torch_model = None
    if torch is not None:
        from tinyvision.testing.torch_twins import TorchUNet

        torch_model = TorchUNet(3, 6, 12, 4, 1, batch_norm=True).train()
        _copy_weights(tv_model, torch_model)
    return ModelCase(tv_model, torch_model, (batch, 3, size, size))


@register("retinanet")
def retinanet_case(batch, size):
    """RetinaNet training step (forward with targets -> both losses -> backward): torchvision's
    resnet18-FPN RetinaNet (P6/P7, 5 classes, min_size = max_size = the image size) vs
    tinyvision's with its weights; the same images and two boxes per image."""
    from tinyvision import nn
    from tinyvision.models.detection import LastLevelP6P7, RetinaNet, resnet_fpn_backbone

    ours = RetinaNet(resnet_fpn_backbone(backbone_name="resnet18", trainable_layers=5, returned_layers=[2, 3, 4],
                                         extra_blocks=LastLevelP6P7(256, 256), norm_layer=nn.BatchNorm2d),
                     5, min_size=size, max_size=size).train()
    rng = np.random.default_rng(0)
    images = [rng.random((3, size, size)).astype(np.float32) for _ in range(batch)]
    s = size / 64
    targets = [{"boxes": (np.array([[4, 6, 30, 40], [20, 10, 60, 50]], np.float32) * s), "labels": np.array([0, 3])}
               for _ in range(batch)]

    def step_tv():
        losses = ours(images, targets)
        (losses["classification"] + losses["bbox_regression"]).backward()

    step_torch, ref = None, None
    if torch is not None:
        from torchvision.models.detection import RetinaNet as TorchRetinaNet
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as torch_fpn_backbone
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as TorchP6P7

        ref = TorchRetinaNet(torch_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                                returned_layers=[2, 3, 4], extra_blocks=TorchP6P7(256, 256),
                                                norm_layer=torch.nn.BatchNorm2d),
                             5, min_size=size, max_size=size).train()
        _copy_weights(ours, ref)
        t_images = [torch.from_numpy(i) for i in images]
        t_targets = [{k: torch.from_numpy(v) for k, v in t.items()} for t in targets]

        def step_torch():
            losses = ref(t_images, t_targets)
            (losses["classification"] + losses["bbox_regression"]).backward()

    return ModelCase(ours, ref, (batch, 3, size, size), steps=(step_tv, step_torch))


def make_runners(case: ModelCase, rng):
    """The two callables the harness times: one training pass each, fresh input tensors."""
    if case.steps is not None:
        run_tv, run_torch = case.steps
        return run_tv, run_torch, None
    x = rng.standard_normal(case.input_shape).astype(np.float32)
    with tv.no_grad():
        y_shape = case.tv_output(case.tv_model(tv.tensor(x))).shape
    gy = rng.standard_normal(y_shape).astype(np.float32)

    def run_tv():
        case.tv_model.zero_grad()
        X = tv.tensor(x, requires_grad=True)
        case.tv_output(case.tv_model(X)).backward(gy)

    run_torch = None
    if case.torch_model is not None:
        tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)

        def run_torch():
            case.torch_model.zero_grad()
            X = tx.clone().requires_grad_(True)
            case.torch_output(case.torch_model(X)).backward(tgy)

    return run_tv, run_torch, tuple(y_shape)


def blas_report():
    """NumPy's BLAS (library, version, chosen kernel, threads) and PyTorch's CPU backends."""
    out = {"OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
           "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE")}
    try:
        import threadpoolctl

        out["numpy_blas"] = [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
            for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"
        ]
    except ImportError:
        out["numpy_blas"] = "threadpoolctl not installed"
    if torch is not None:
        out["torch_cpu"] = {"mkl": torch.backends.mkl.is_available(), "mkldnn": torch.backends.mkldnn.is_available(),
                            "capability": torch.backends.cpu.get_cpu_capability()}
    return out


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: kilobytes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 2, 64 px, 2 repeats: a smoke run")
    ap.add_argument("--cases", default=None, help=f"comma-separated subset of {sorted(CASES)}")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 8; 2 with --quick)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 128; 64 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per side (default 5; 2 with --quick)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes per side first (Numba compiles)")
    ap.add_argument("--pause", type=float, default=0.1, help="untimed sleep before each timed call")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for each library (default: as configured, normally every core)")
    args = ap.parse_args(argv)
    batch = args.batch or (2 if args.quick else 8)
    size = args.size or (64 if args.quick else 128)
    repeats = args.repeats or (2 if args.quick else 5)
    names = args.cases.split(",") if args.cases else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {sorted(CASES)}")

    if args.threads:
        H.set_threads(args.threads)
    threads = H.thread_report()
    blas = blas_report()
    print(f"(N, 3, {size}, {size}) N={batch}, float32, train mode, forward + backward, median of {repeats} "
          f"interleaved repeats; threads: {threads}")
    print(f"BLAS: {blas}")
    if torch is None:
        print("PyTorch not installed: tinyvision columns only")
    header = f"{'case':12s} {'tv ms':>10s} {'torch ms':>10s} {'speed':>6s} {'tv peak MB':>10s} {'peak RSS MB':>11s}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        case = CASES[name](batch, size)
        run_tv, run_torch, y_shape = make_runners(case, rng)
        fns = {"tv": run_tv} if run_torch is None else {"tv": run_tv, "torch": run_torch}
        med = H.interleaved(fns, repeats, warmup=args.warmup, pause=args.pause)
        peak = H.peak_traced_bytes(run_tv)
        t_tv, t_th = med["tv"], med.get("torch")
        row = dict(case=name, input_shape=list(case.input_shape),
                   output_shape=None if y_shape is None else list(y_shape),
                   tinyvision_ms=1e3 * t_tv, torch_ms=None if t_th is None else 1e3 * t_th,
                   speed_ratio=None if t_th is None else t_th / t_tv,
                   tinyvision_peak_mb=peak / 2**20, process_peak_rss_mb=_peak_rss_mb())
        rows.append(row)
        th = "-" if t_th is None else f"{row['torch_ms']:.1f}"
        ratio = "-" if t_th is None else f"{row['speed_ratio']:.2f}"
        print(f"{name:12s} {row['tinyvision_ms']:10.1f} {th:>10s} {ratio:>6s} {row['tinyvision_peak_mb']:10.1f} "
              f"{row['process_peak_rss_mb']:11.0f}", flush=True)
        del case
    payload = dict(batch=batch, size=size, repeats=repeats, dtype="float32", threads=threads, blas=blas, rows=rows)
    if args.json:
        H.save_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
