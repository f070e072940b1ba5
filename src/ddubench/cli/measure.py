"""Subcommands that measure models: parameters, training-step time, inference memory and time, scaling."""

from __future__ import annotations

import argparse
import time

from ..device import resolve_device
from ..errors import DdubenchError
from ._shared import Commands, positive_int, resolution, set_threads


def cmd_measure(args: argparse.Namespace) -> None:
    import torch

    from ..analysis.params import count_parameters
    from ..measure.timing import measure_train_step
    from ..models import ModelSpec, build_model

    set_threads(args.threads)
    spec = ModelSpec.parse(args.model)
    if args.what == "params":
        in_channels, num_classes = spec.io
        size = (args.subimage_size, args.subimage_size)
        model = build_model(spec, in_channels=in_channels, num_classes=num_classes, subimage_size=size)
        print(f"{spec.label} ({spec}): {count_parameters(model)} parameters")
        return
    layout = {"--grid": args.grid, "--subimage": args.subimage, "--in-channels": args.in_channels,
              "--num-classes": args.num_classes}
    given = [flag for flag, value in layout.items() if value]
    if given and not args.distributed:
        raise DdubenchError(f"{', '.join(given)} apply to step-time --distributed only; add --distributed or drop them")
    if (args.in_channels is None) != (args.num_classes is None):
        raise DdubenchError("--in-channels and --num-classes go together; give both or neither")
    if args.distributed:
        _step_time_over_ranks(args)
        return
    record = measure_train_step(args.model, args.k, args.subimage_size, args.batch_size, args.warmup, args.repeats,
                                compile_model=args.compile, device=resolve_device(args.device),
                                authors_scheme=args.authors_scheme, stacked_seeds=args.stacked_seeds)
    print(f"{record['label']} ({record['mode']}, {record['device']}): training step, batch {args.batch_size}, "
          f"k={args.k}: median "
          f"{record['step_time_median_s'] * 1e3:.1f} ms (IQR {record['step_time_q1_s'] * 1e3:.1f}-"
          f"{record['step_time_q3_s'] * 1e3:.1f} ms), {record['images_per_s']:.1f} images/s, "
          f"{torch.get_num_threads()} threads")
    if args.out:
        from ..io import write_json
        from ..provenance import provenance

        write_json(args.out, {**record, "provenance": provenance(method="time.perf_counter around forward, "
                                                                        "dice loss, backward, Adam step")})


def _step_time_over_ranks(args: argparse.Namespace) -> None:
    """`measure step-time --distributed` under torchrun: rank 0 writes every rank's record."""
    from ..distributed.runtime import distributed
    from ..io import write_json
    from ..measure.scaling import gather_records
    from ..measure.train_ranks import METHOD, measure_rank_train_step
    from ..provenance import provenance

    if args.compile or args.authors_scheme:
        flag = "--compile" if args.compile else "--authors-scheme"
        raise DdubenchError(f"{flag} applies to single-process training only; drop it with --distributed")
    with distributed(device=args.device) as ctx:
        records = gather_records(measure_rank_train_step(
            args.model, args.k, ctx, args.subimage_size, args.batch_size, args.warmup, args.repeats, grid=args.grid,
            subimage=args.subimage, io=(args.in_channels, args.num_classes) if args.in_channels else None))
        if ctx.is_main:
            slowest = max(r["step_time_median_s"] for r in records)
            print(f"{records[0]['label']} over {ctx.world_size} {ctx.backend} ranks, batch {args.batch_size}, "
                  f"k={args.k}: median {slowest * 1e3:.1f} ms, peak "
                  f"{max(r['peak_mem_bytes'] for r in records) / 2**20:.1f} MB per rank")
            if args.out:
                write_json(args.out, {"records": records, "provenance": provenance(
                    world_size=ctx.world_size, method=f"{METHOD}; memory: {records[0]['memory_method']}",
                    extra={"backend": ctx.backend})})


def cmd_inference(args: argparse.Namespace) -> None:
    from ..io import write_json
    from ..measure.inference import measure_model
    from ..provenance import provenance, utc_now

    set_threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    height, width = args.resolution
    record = measure_model(args.model, height, width, resolve_device(args.device), args.subimage_size,
                           warmup=args.warmup, repeats=args.repeats)
    write_json(args.out, {"records": [record], "provenance": provenance(
        started=started, wall_time_s=time.perf_counter() - clock, method=record["memory_method"])})
    print(f"{record['label']} {height}x{width}: {record['params']} parameters, "
          f"{record['peak_mem_bytes'] / 2**20:.1f} MB peak, {record['time_mean_s']:.3f} +- {record['time_std_s']:.3f} s")


def cmd_scaling(args: argparse.Namespace) -> None:
    from ..distributed.runtime import distributed
    from ..io import write_json
    from ..measure.scaling import gather_records, measure_rank
    from ..provenance import provenance, utc_now

    set_threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    with distributed(device=args.device) as ctx:
        records = []
        for height, width in args.resolutions:
            records += gather_records(measure_rank(args.model, height, width, ctx, subimage_size=args.subimage_size,
                                                   warmup=args.warmup, repeats=args.repeats))
        if ctx.is_main:
            write_json(args.out, {"records": records, "provenance": provenance(
                started=started, wall_time_s=time.perf_counter() - clock, world_size=ctx.world_size,
                method=records[0]["memory_method"], extra={"backend": ctx.backend})})
            for r in records:
                print(f"P={r['world_size']} rank {r['rank']} {r['height_px']}x{r['width_px']}: "
                      f"{r['peak_mem_bytes'] / 2**20:.1f} MB, {r['time_median_s'] * 1e3:.1f} ms")


def cmd_memory_timeline(args: argparse.Namespace) -> None:
    """Record training steps' memory over time, in one process or, with --distributed, on every torchrun rank."""
    from ..io import write_json
    from ..measure.memory_timeline import LocalTraining, record_timeline
    from ..provenance import provenance, utc_now

    set_threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    io = (args.in_channels, args.num_classes) if args.in_channels else None
    if (args.in_channels is None) != (args.num_classes is None):
        raise DdubenchError("--in-channels and --num-classes go together; give both or neither")
    layout = {"spec": args.model, "grid": list(args.grid), "subimage": list(args.subimage),
              "batch_size": args.batch_size, "iterations": args.iterations}

    def write(records: list[dict], world_size: int) -> None:
        write_json(args.out, {"records": records, "provenance": provenance(
            started=started, wall_time_s=time.perf_counter() - clock, world_size=world_size,
            method=records[0]["method"])})
        peaks = ", ".join(f"rank {r['rank']} {r['peak_bytes'] / 2**20:.1f} MB" for r in records)
        print(f"{records[0]['label']}: {args.iterations} training iterations recorded; peak {peaks}")

    if not args.distributed:
        device = resolve_device(args.device)
        training = LocalTraining(args.model, args.grid, args.subimage, args.batch_size, io, device)
        record = record_timeline(training, device, args.iterations)
        write([{**layout, "label": training.spec.label, "params": training.params, "world_size": 1, "rank": 0,
                "device": str(device), **record}], 1)
        return
    from ..distributed.runtime import distributed
    from ..measure.scaling import gather_records
    from ..measure.train_ranks import rank_training

    with distributed(device=args.device) as ctx:
        training = rank_training(args.model, ctx, args.grid, args.subimage, args.batch_size, io)
        record = record_timeline(training, ctx.device, args.iterations)
        records = gather_records({**layout, "label": training.spec.label, "params": training.params,
                                  "world_size": ctx.world_size, "rank": ctx.rank, "device": str(ctx.device),
                                  "backend": ctx.backend, **record})
        if ctx.is_main:
            write(records, ctx.world_size)


def register(commands: Commands) -> None:
    """measure, inference, scaling, memory-timeline."""
    p = commands.add("measure", cmd_measure,
                     "Measure a model: parameter count, or training-step time on random data.", outputs=("out",))
    p.add_argument("what", choices=["params", "step-time"], help="parameter count or training-step time")
    p.add_argument("--model", required=True, help="model spec, e.g. ddunet_D3_F16_CY")
    p.add_argument("--k", type=int, default=2, help="subimages per image (step-time)")
    p.add_argument("--subimage-size", type=int, default=32, help="side of one square subimage in pixels")
    p.add_argument("--batch-size", type=int, default=16, help="step-time: batch size")
    p.add_argument("--warmup", type=int, default=3, help="step-time: untimed steps first")
    p.add_argument("--repeats", type=positive_int, default=10, help="step-time: timed steps")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="step-time: time the torch.compile'd step (train --compile)")
    p.add_argument("--authors-scheme", action="store_true",
                   help="step-time: the authors' training scheme for the same DDU-Net (k cloned encoder-decoders, "
                        "gradients summed into clone 0, Adam, load_state_dict broadcast; eager), as a reference")
    p.add_argument("--stacked-seeds", type=int, default=1, metavar="S",
                   help="step-time: S seeds of the model trained in one process (weights stacked, one vmap-ed call "
                        "a step); the record's step time is the stacked step's / S")
    p.add_argument("--distributed", action="store_true",
                   help="step-time: the spatially parallel step of `train --distributed` over the ranks of torchrun "
                        "(torchrun --nproc-per-node P -m ddubench measure step-time --distributed ...)")
    p.add_argument("--grid", type=resolution, metavar="ROWSxCOLS",
                   help="step-time --distributed: a grid of subimages instead of 1 x k (e.g. 2x2)")
    p.add_argument("--subimage", type=resolution, metavar="HxW",
                   help="step-time --distributed: a subimage of H x W px instead of --subimage-size squared")
    p.add_argument("--in-channels", type=int, help="step-time --distributed: input channels (with --num-classes; "
                   "default: the spec's data, 1 and 3 for the synthetic task)")
    p.add_argument("--num-classes", type=int, help="step-time --distributed: classes (with --in-channels)")
    p.add_argument("--out", help="step-time: also write the record as JSON")
    p.add_argument("--device", default="cpu", help="step-time: cpu, cuda, cuda:N or auto (CUDA timed "
                   "synchronised); with --distributed cpu, cuda or auto (each rank on cuda:LOCAL_RANK)")

    p = commands.add("inference", cmd_inference,
                     "Peak memory and time of one model's forward pass on one image on one device (random weights, "
                     "batch 1; journal Table 7's one-device rows).", outputs=("out",))
    p.add_argument("--model", required=True, help="model spec, e.g. resnetddunet_R18_F256_CY, glnet, fctl")
    p.add_argument("--resolution", type=resolution, required=True, help="HEIGHTxWIDTH of the image")
    p.add_argument("--subimage-size", type=int, default=None, help="DDU-Net subimage side (default: whole image)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed passes")
    p.add_argument("--out", required=True, help="JSON with the record (same shape as `ddubench scaling`)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")

    p = commands.add("scaling", cmd_scaling,
                     "Per-rank inference peak memory and time of a DDU-Net split over the ranks of torchrun "
                     "(torchrun --standalone --nproc-per-node P -m ddubench scaling ...; gloo on CPU, NCCL on GPUs).",
                     outputs=("out",))
    p.add_argument("--model", required=True, help="DDU-Net spec, e.g. ddunet_D3_F16_CY")
    p.add_argument("--resolutions", type=resolution, nargs="+", required=True, help="HEIGHTxWIDTH images")
    p.add_argument("--subimage-size", type=int, default=32, help="side of one square subimage in pixels")
    p.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed passes")
    p.add_argument("--out", required=True, help="JSON with every rank's record (written by rank 0)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda/auto (NCCL, cuda:LOCAL_RANK)")

    p = commands.add("memory-timeline", cmd_memory_timeline,
                     "Memory over time during a few training iterations (thesis Figs. 6.8, 6.9): PyTorch's allocator "
                     "recording on CUDA, live tensors by category on CPU; --distributed records every torchrun rank.",
                     outputs=("out",))
    p.add_argument("--model", required=True, help="model spec, e.g. unet_D4_W16 or ddunet_D4_F64_CY_W16")
    p.add_argument("--grid", type=resolution, default=(1, 1), metavar="ROWSxCOLS", help="subimages of the image")
    p.add_argument("--subimage", type=resolution, required=True, metavar="HxW", help="one subimage in pixels")
    p.add_argument("--in-channels", type=int, help="input channels (with --num-classes; default: the spec's data)")
    p.add_argument("--num-classes", type=int, help="classes (with --in-channels)")
    p.add_argument("--batch-size", type=int, default=1, help="images per step")
    p.add_argument("--iterations", type=int, default=5, help="training iterations recorded (thesis: 5)")
    p.add_argument("--distributed", action="store_true",
                   help="split a DDU-Net's subimages over the ranks of torchrun (torchrun --nproc-per-node P -m "
                        "ddubench memory-timeline --distributed ...); rank 0 writes every rank's timeline")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (with --distributed: cpu, cuda or auto)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--out", required=True, help="JSON with one record (timeline) per rank")
