"""``ddubench``: the command line of the suite. Every Snakemake rule calls one of these subcommands.

This is the only place that turns project errors into exit codes: a user mistake prints one line
(``ddubench: error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from . import __version__
from .compat import check_torch
from .device import resolve_device
from .errors import DdubenchError

DESCRIPTION = """\
ddubench: a reproducible benchmark suite for DDU-Net (a U-Net split into subimages joined by a coarse
network that exchanges bottleneck features) and its baselines. The Snakemake workflow in the repository
root calls these subcommands; you can also call them by hand.

Model specs name a registered model and its hyperparameters: unet_D3 = U-Net(3);
ddunet_D3_F16_CY = DDU-Net(D=3, F=16, C=Y); ddunet_D3_F16_CN has the coarse network applied per
subimage; add _W8 for base width 8. resnetddunet_R18_F256_CY = DDU-Net(4, 256, Y) with a frozen
ResNet18 encoder (R50: ResNet50), the DeepGlobe model of journal Table 9.
"""


def _threads(value: int | None) -> None:
    if value:
        import torch

        torch.set_num_threads(value)


def cmd_generate_synthetic(args: argparse.Namespace) -> None:
    from .data.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(k=args.k, rule=args.rule, subimage_size=args.subimage_size, seed=args.seed)
    write_dataset(spec, {"train": args.train, "val": args.val, "test": args.test}, args.out)
    print(f"wrote {args.out}")


def cmd_deepglobe_fake(args: argparse.Namespace) -> None:
    from .data.fake_deepglobe import write_fake_deepglobe

    write_fake_deepglobe(args.out, args.images, args.size, args.seed)
    print(f"wrote {args.images} fake DeepGlobe-format tiles ({args.size}x{args.size}) to {args.out}/train")


def cmd_deepglobe_prepare(args: argparse.Namespace) -> None:
    from .data.deepglobe import SPLITS, PrepareSpec, prepare

    spec = PrepareSpec(train=args.train, val=args.val, test=args.test, split_seed=args.split_seed,
                       crop_train=args.crop_train, crop_test=args.crop_test, subimage=args.subimage)
    manifest = prepare(args.root, args.out, spec, progress=not args.no_progress)
    crops = ", ".join(f"{split} {len(manifest['splits'][split]['crops'])}" for split in SPLITS)
    print(f"wrote {args.out}: crops {crops}")


def _count_or_fraction(text: str) -> int | float:
    """A split size: an image count (integer) or a fraction (decimal)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r} is neither an image count nor a fraction")


def _stop_on_sigterm(rank: int) -> None:
    """Turn the launcher's SIGTERM (sent when another rank failed) into a one-line project error."""
    import signal

    def handler(signum, frame):  # noqa: ARG001
        raise DdubenchError(f"rank {rank}: stopped by the launcher, most likely because another rank failed "
                            "(see its error); finished epochs are kept and a rerun resumes from them")

    signal.signal(signal.SIGTERM, handler)


def cmd_train(args: argparse.Namespace) -> None:
    from .training.run import train_model
    from .training.trainer import TrainConfig

    _threads(args.threads)
    config = TrainConfig(
        lr=args.lr, max_epochs=args.max_epochs, min_epochs=args.min_epochs,
        early_stopping_patience=args.early_stopping_patience, lr_patience=args.lr_patience,
        lr_factor=args.lr_factor, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        dropout=args.dropout, loss=args.loss, seed=args.seed, grad_clip_norm=args.grad_clip_norm,
    )

    def train(ctx=None) -> dict:
        device = ctx.device if ctx else resolve_device(args.device)
        return train_model(args.model, args.data, args.run_dir, config, args.summary,
                           device=device, progress=not args.no_progress, ctx=ctx, bn=args.bn,
                           compile_model=args.compile, amp=args.amp, weights=args.weights,
                           subimage=args.subimage, init_from=args.init_from)

    if args.distributed:
        from .distributed.runtime import distributed

        with distributed(device=args.device) as ctx:
            _stop_on_sigterm(ctx.rank)
            summary = train(ctx)
    else:
        summary = train()
    if summary:
        result = summary["result"]
        print(f"{summary['label']}: {result['epochs_run']} epochs, best val loss {result['best_val_loss']:.4f} "
              f"at epoch {result['best_epoch']}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.run import evaluate_checkpoint

    _threads(args.threads)
    record = evaluate_checkpoint(args.checkpoint, args.data, args.out, batch_size=args.batch_size,
                                 device=resolve_device(args.device), progress=not args.no_progress,
                                 subimage=args.subimage)
    iou = ", ".join(f"{name} {value:.4f}" for name, value in record["scores"]["iou"].items() if value is not None)
    print(f"{record['label']} on k={record['test_k']}: IoU {iou}; mIoU {record['scores']['miou']:.4f}")


def cmd_predictions(args: argparse.Namespace) -> None:
    from .evaluation.run import prediction_figure

    _threads(args.threads)
    prediction_figure(args.checkpoints, args.data, args.examples, args.pdf, args.csv)
    print(f"wrote {args.pdf} and {args.csv}")


def cmd_deepglobe_predictions(args: argparse.Namespace) -> None:
    from .report.deepglobe_figures import prediction_figures

    if len(args.subimages) != len(args.checkpoints):
        raise DdubenchError(f"--subimages has {len(args.subimages)} entries for {len(args.checkpoints)} --checkpoints; "
                            "give one (whole, own or a side in px) per checkpoint")
    _threads(args.threads)
    prediction_figures(args.checkpoints, args.subimages, args.data, args.examples, args.pdf14, args.csv14,
                       args.pdf15, args.csv15, device=resolve_device(args.device))
    print(f"wrote {args.pdf14}, {args.pdf15} and their CSVs")


def cmd_examples(args: argparse.Namespace) -> None:
    from .report import deepglobe_figures

    draw = deepglobe_figures.synthetic_examples if args.kind == "synthetic" else deepglobe_figures.deepglobe_examples
    draw(args.data, args.examples, args.pdf, args.csv)
    print(f"wrote {args.pdf} and {args.csv}")


def _subimage_choice(text: str) -> str:
    """``whole``, ``own`` or a subimage side in pixels."""
    if text in ("whole", "own") or text.isdigit():
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not whole, own or a subimage side in pixels")


def _write_table(frame, out: str, config_file: str | None, started: str, clock: float, **extra) -> None:
    from .config import load_config
    from .io import atomic_path
    from .provenance import provenance, write_sidecar

    config = load_config(config_file) if config_file else None
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    write_sidecar(out, provenance(config=config, config_file=config_file,
                                  seeds=config["seeds"] if config else None, started=started,
                                  wall_time_s=time.perf_counter() - clock, **extra))
    print(f"wrote {out}")


ANALYSIS_TABLES = ("table4", "table5", "fig7")


def _analysis_table(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Tables 4 and 5 (from the modules) and Fig. 7 (measured on --device, sweep from --config)."""
    from .config import load_config
    from .report import rf_memory

    if args.name == "table4":
        return rf_memory.table4(), {"method": rf_memory.TABLE4_METHOD}
    if args.name == "table5":
        return rf_memory.table5(), {"method": rf_memory.TABLE5_METHOD}
    if not args.config:
        raise DdubenchError("fig7 needs --config: the configuration whose fig7.resolutions are measured")
    _threads(args.threads)
    sweep = load_config(args.config)["fig7"]
    device = resolve_device(args.device or sweep["device"])
    frame, method = rf_memory.fig7_memory(sweep["resolutions"], device, sweep["max_memory_mb"])
    return frame, {"method": f"measured: {method}; predicted: ddubench.analysis.memory_model",
                   "extra": {"setup": rf_memory.FIG7_SETUP}}


DEEPGLOBE_TABLES = ("table3", "table9", "table6", "fig13")


def _deepglobe_table(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Tables 3 (class pixels of --data), 9 (modules), 6 (--config) and Fig. 13 (--evals, --config)."""
    from pathlib import Path

    from .config import load_config
    from .io import read_json
    from .report import deepglobe_tables

    if args.name in ("table6", "fig13"):
        if not args.config or (args.name == "fig13" and not args.evals):
            raise DdubenchError(f"{args.name} needs --config (the run's config)"
                                + (" and --evals (the Fig. 13 grid's eval JSON files)" if args.name == "fig13" else ""))
        config = load_config(args.config)
        if args.name == "table6":
            return deepglobe_tables.table6(config["deepglobe"]), {}
        records = [read_json(path) for path in args.evals]
        return deepglobe_tables.fig13_table(records, config), {
            "inputs": list(args.evals), "method": "mIoU over the six land-cover classes (unknown excluded) from "
                                                  "each evaluation's confusion matrix; mean and std (n - 1) over seeds"}
    if args.name == "table9":
        return deepglobe_tables.table9(), {"method": "parameters counted on the ddubench ResNet DDU-Net modules "
                                           "(torch numel, BN buffers excluded); feature-map sizes from a shape-only "
                                           "(meta-device) forward pass of one 256x256 subimage"}
    if not args.data:
        raise DdubenchError("table3 needs --data: the prepared DeepGlobe folder (with manifest.json)")
    return deepglobe_tables.table3(args.data), {"inputs": [str(Path(args.data) / "manifest.json")],
                                                "extra": {"data": deepglobe_tables.data_record(args.data)}}


BASELINE_TABLES = ("table1", "table2")


def _baseline_table(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Tables 1 and 2 from the patching/downsampling runs' train.json and eval_<split>.json records."""
    from .config import load_config
    from .report import baseline_tables

    if not args.evals or not args.config:
        raise DdubenchError(f"{args.name} needs --evals (the train.json and eval_<split>.json records of its runs) "
                            "and --config (the run's config)")
    config = load_config(args.config)
    splits = baseline_tables.needed_splits(config["deepglobe"]["training"]["select_on"])
    frame = baseline_tables.baseline_table(args.name, baseline_tables.read_runs(args.evals, splits), config)
    return frame, {"inputs": list(args.evals), "method": "mIoU over the six land-cover classes (unknown excluded) "
                                                         "from each evaluation record's confusion matrix"}


def _table7(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Table 7 from the measurement JSONs (one per row, named <row>.json) and test evaluations."""
    from pathlib import Path

    from .config import load_config
    from .io import read_json
    from .report.table7 import table7

    if not args.config or not args.evals:
        raise DdubenchError("table7 needs --config (its table7.rows) and --evals (the rows' measurement JSONs, "
                            "results/<run>/table7/<row>.json)")
    cfg = load_config(args.config)["table7"]
    measured = {Path(path).stem: read_json(path)["records"] for path in args.evals}
    missing = [row["id"] for row in cfg["rows"] if row["id"] not in measured]
    if missing:
        raise DdubenchError(f"table7: no measurement JSON for rows {', '.join(missing)}; pass "
                            "results/<run>/table7/<row>.json for every row of the config")
    scores = [read_json(path) for path in args.scores or []]
    first = next(iter(measured.values()))[0]
    setting = (f"ours: random weights, batch 1, {cfg['resolution']}x{cfg['resolution']} image, inference mode, "
               f"{cfg['threads']} torch threads per device on {first['device']}, mean and std of {cfg['repeats']} "
               f"passes after {cfg['warmup']} warm-up; paper: V100S GPUs (CUDA allocator)")
    frame = table7(cfg["rows"], measured, scores, cfg["miou_reason"], setting)
    return frame, {"inputs": list(args.evals) + list(args.scores or []), "method": first["memory_method"]}


def cmd_table(args: argparse.Namespace) -> None:
    from .config import load_config
    from .io import read_json
    from .provenance import utc_now
    from .report import paper, tables

    started, clock = utc_now(), time.perf_counter()
    if args.name in ANALYSIS_TABLES:
        frame, extra = _analysis_table(args)
    elif args.name in DEEPGLOBE_TABLES:
        frame, extra = _deepglobe_table(args)
    elif args.name in BASELINE_TABLES:
        frame, extra = _baseline_table(args)
    elif args.name == "table7":
        frame, extra = _table7(args)
    elif args.name == "table8":
        frame = tables.table8()
        extra = {"method": "parameters counted on the ddubench modules (torch numel, BN buffers excluded)"}
    elif args.name == "table10":
        if not args.config:
            raise DdubenchError("table10 needs --config: the configuration whose hyperparameters are reported")
        config = load_config(args.config)
        frame = tables.table10(config)
        extra = {}
    elif args.name == "protocol":
        from .report.protocol import protocol_table

        if not args.evals or not args.config:
            raise DdubenchError("protocol needs --evals (every study model's eval_k<k>.json and eval_val.json) "
                                "and --config (the run's config with its protocol_study section)")
        ceilings = {str(path): read_json(path)["iou_line_ceiling"] for path in args.ceilings or []}
        frame = protocol_table(load_config(args.config), {str(path): read_json(path) for path in args.evals},
                               ceilings)
        extra = {"inputs": list(args.evals) + list(args.ceilings or []),
                 "method": "line IoU from one confusion matrix per split (test, val), per-image mean on test, and "
                 "per distance bin between the circle centres"}
    elif args.name == "throughput":
        from .report.throughput import throughput_table

        if not args.evals:
            raise DdubenchError("throughput needs --evals: the JSON files written by `ddubench measure step-time`")
        frame = throughput_table([read_json(path) for path in args.evals])
        extra = {"inputs": list(args.evals), "method": "time.perf_counter around one training step"}
    elif args.name == "scaling":
        from .report.scaling import scaling_table

        if not args.evals:
            raise DdubenchError("scaling needs --evals: the JSON files written by `ddubench scaling`")
        records = [r for path in args.evals for r in read_json(path)["records"]]
        frame = scaling_table(records)
        extra = {"inputs": list(args.evals), "method": records[0]["memory_method"]}
    else:
        if not args.evals or not args.config:
            raise DdubenchError(f"{args.name} needs --evals (the evaluation JSON files) and --config (the run's config)")
        records = [read_json(path) for path in args.evals]
        note = tables.scale_note(load_config(args.config))
        if args.name == "fig10":
            frame = tables.depth_table(records, note)
        else:
            reference = paper.FIG9_LINE_IOU if args.name == "fig9" else paper.FIG11_LINE_IOU
            ceilings = {(c["spec"], c["k"]): c["iou_line_ceiling"] for c in map(read_json, args.ceilings or [])}
            frame = tables.line_iou_grid(records, reference, depth=paper.FIG9_DEPTH, note=note, ceilings=ceilings)
        extra = {"inputs": list(args.evals) + list(args.ceilings or [])}
    _write_table(frame, args.out, args.config, started, clock, **extra)


# figure name -> (module of ddubench.report, drawing function(csv, out)); fig9/fig11 are the heatmaps below
FIGURE_DRAWERS = {
    "fig7": ("rf_memory", "fig7_figure"),
    "scaling": ("scaling", "scaling_figure"),
    "protocol": ("protocol", "protocol_bars"),
    "protocol_distance": ("protocol", "protocol_distance"),
    "fig13": ("deepglobe_figures", "fig13_figure"),
}


def cmd_figure(args: argparse.Namespace) -> None:
    import importlib

    from .report.figures import line_iou_heatmaps

    if args.name in FIGURE_DRAWERS:
        module, function = FIGURE_DRAWERS[args.name]
        getattr(importlib.import_module(f".report.{module}", __package__), function)(args.csv, args.out)
        print(f"wrote {args.out}")
        return

    titles = {
        "fig9": ("Journal Fig. 9: line-class IoU, trained and tested on k subimages", "k (subimages)"),
        "fig11": ("Journal Fig. 11: line-class IoU on the 6-subimage test set", "k trained on"),
    }
    title, ylabel = titles[args.name]
    line_iou_heatmaps(args.csv, args.out, title, ylabel)
    print(f"wrote {args.out}")


def cmd_measure(args: argparse.Namespace) -> None:
    import torch

    from .analysis.params import count_parameters
    from .measure.timing import measure_train_step
    from .models import ModelSpec, build_model

    _threads(args.threads)
    spec = ModelSpec.parse(args.model)
    if args.what == "params":
        in_channels, num_classes = spec.io
        size = (args.subimage_size, args.subimage_size)
        model = build_model(spec, in_channels=in_channels, num_classes=num_classes, subimage_size=size)
        print(f"{spec.label} ({spec}): {count_parameters(model)} parameters")
        return
    if args.distributed:
        _step_time_over_ranks(args)
        return
    record = measure_train_step(args.model, args.k, args.subimage_size, args.batch_size, args.warmup, args.repeats,
                                compile_model=args.compile, device=resolve_device(args.device))
    print(f"{record['label']} ({record['mode']}, {record['device']}): training step, batch {args.batch_size}, "
          f"k={args.k}: median "
          f"{record['step_time_median_s'] * 1e3:.1f} ms (IQR {record['step_time_q1_s'] * 1e3:.1f}-"
          f"{record['step_time_q3_s'] * 1e3:.1f} ms), {record['images_per_s']:.1f} images/s, "
          f"{torch.get_num_threads()} threads")
    if args.out:
        from .io import write_json
        from .provenance import provenance

        write_json(args.out, {**record, "provenance": provenance(method="time.perf_counter around forward, "
                                                                        "dice loss, backward, Adam step")})


def _step_time_over_ranks(args: argparse.Namespace) -> None:
    """`measure step-time --distributed` under torchrun: rank 0 writes every rank's record."""
    from .distributed.runtime import distributed
    from .io import write_json
    from .measure.scaling import gather_records
    from .measure.train_ranks import METHOD, measure_rank_train_step
    from .provenance import provenance

    if args.compile:
        raise DdubenchError("--compile applies to single-process training only; drop it with --distributed")
    with distributed(device=getattr(args, "device", "cpu")) as ctx:
        records = gather_records(measure_rank_train_step(args.model, args.k, ctx, args.subimage_size,
                                                         args.batch_size, args.warmup, args.repeats))
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
    from .io import write_json
    from .measure.inference import measure_model
    from .provenance import provenance, utc_now

    _threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    height, width = args.resolution
    record = measure_model(args.model, height, width, resolve_device(args.device), args.subimage_size,
                           warmup=args.warmup, repeats=args.repeats)
    write_json(args.out, {"records": [record], "provenance": provenance(
        started=started, wall_time_s=time.perf_counter() - clock, method=record["memory_method"])})
    print(f"{record['label']} {height}x{width}: {record['params']} parameters, "
          f"{record['peak_mem_bytes'] / 2**20:.1f} MB peak, {record['time_mean_s']:.3f} +- {record['time_std_s']:.3f} s")


def cmd_scaling(args: argparse.Namespace) -> None:
    from .distributed.runtime import distributed
    from .io import write_json
    from .measure.scaling import gather_records, measure_rank
    from .provenance import provenance, utc_now

    _threads(args.threads)
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


def cmd_compare(args: argparse.Namespace) -> None:
    from .report.compare import markdown

    for csv in args.csvs:
        print(markdown(csv))
        print()


def _resolution(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution {text!r} is not HEIGHTxWIDTH, e.g. 32x512") from None
    return height, width


def cmd_receptive_field(args: argparse.Namespace) -> None:
    from .analysis.receptive_field import receptive_field
    from .models import DDUNet, ModelSpec, build_model

    spec = ModelSpec.parse(args.model)
    size = args.subimage_size
    in_channels, num_classes = spec.io
    model = build_model(spec, in_channels=in_channels, num_classes=num_classes, subimage_size=(size, size))
    rf = receptive_field(model)

    def px(value: tuple[int, int]) -> str:
        return f"{value[0]} x {value[1]} px"

    print(f"{spec.label} ({spec}): receptive field of one output pixel, in input pixels (height x width)")
    print(f"  paper's convention (backward recurrence, ceil(r/2) at 2x2 transposed convs): {px(rf.backward)}")
    print(f"  textbook forward formula (r += (k - 1) * jump):                              {px(rf.forward)}")
    print(f"  exact extent over output positions:                                          "
          f"{px(rf.exact_min)} to {px(rf.exact_max)}")
    if isinstance(model, DDUNet):
        reach = ("on finite subimages the coarse network still reaches across them"
                 if model.coarse is not None and model.communicate else f"capped at {size} px on {size} px subimages")
        print(f"  for one infinitely large subimage (the paper's upper bound); {reach}")


def cmd_ceiling(args: argparse.Namespace) -> None:
    from .analysis.ceiling import line_iou_ceiling, support_class, support_model
    from .data.synthetic import SyntheticSpec
    from .io import write_json
    from .models import ModelSpec
    from .provenance import provenance, utc_now

    _threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    data = SyntheticSpec(k=args.k, rule=args.rule, subimage_size=args.subimage_size, seed=args.seed)
    spec = ModelSpec.parse(args.model)
    if support_class(args.model) is None:
        raise DdubenchError(f"--model {args.model}: the ceiling is defined for the synthetic task's U-Net and DDU-Net "
                            "specs (e.g. unet_D3, ddunet_D3_F1_CY), whose dependency regions it reads")
    result = line_iou_ceiling(support_model(args.model, args.subimage_size), data, images=args.images,
                              background_samples=args.background_samples, seed=args.seed, split=args.split)
    record = {"spec": str(spec), "label": spec.label, "k": args.k, **result}
    write_json(args.out, {**record, "provenance": provenance(
        started=started, wall_time_s=time.perf_counter() - clock, seeds=[args.seed],
        method="Bayes-optimal line prediction from each output pixel's dependency region (ddubench.analysis.ceiling)")})
    print(f"{spec.label} on k={args.k}: receptive-field ceiling of the line IoU {result['iou_line_ceiling']:.4f} "
          f"(threshold {result['threshold']:.3f}, {args.images} {args.split} images)")


def cmd_cnn_dnn_classification(args: argparse.Namespace) -> None:
    from baselines.cnn_dnn_classification import write_classification_table

    from .config import load_config

    _threads(args.threads)
    config = load_config(args.config)
    write_classification_table(config["cnn_dnn"], args.out, config=config, config_file=args.config,
                               device=resolve_device(args.device), progress=not args.no_progress)
    print(f"wrote {args.out}")


def cmd_validate_config(args: argparse.Namespace) -> None:
    from .config import load_config

    for path in args.configs:
        load_config(path)
        print(f"{path}: valid")


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or auto (with --distributed: each rank uses cuda:LOCAL_RANK "
                             "and NCCL for cuda/auto, gloo on the CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs stay readable)")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it says something: not for required options, flags or no default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, True) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddubench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=_HelpFormatter)
        p.set_defaults(handler=handler)
        return p

    p = add("generate-synthetic", cmd_generate_synthetic,
            "Write the synthetic circles-and-line dataset for one k (train/val/test .npz + manifest).")
    p.add_argument("--k", type=int, required=True, help="subimages per image; images are (32k)x32")
    p.add_argument("--rule", choices=["journal", "thesis"], default="journal",
                   help="circle placement: journal = any other subimage, width 3; thesis = <= 1 subimage between, width 2")
    p.add_argument("--subimage-size", type=int, default=32, help="side of one square subimage in pixels")
    p.add_argument("--train", type=int, default=4000, help="training images")
    p.add_argument("--val", type=int, default=1000, help="validation images")
    p.add_argument("--test", type=int, default=1000, help="test images")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator (data, not training)")
    p.add_argument("--out", required=True, help="output directory")

    p = add("deepglobe-fake", cmd_deepglobe_fake,
            "Write generated DeepGlobe-format tiles (<out>/train/<id>_sat.jpg + <id>_mask.png); NOT DeepGlobe data.")
    p.add_argument("--out", required=True, help="root folder of the fake tiles")
    p.add_argument("--images", type=int, default=8, help="number of tiles")
    p.add_argument("--size", type=int, default=2448, help="tile side in pixels (DeepGlobe: 2448)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tile generator")

    p = add("deepglobe-prepare", cmd_deepglobe_prepare,
            "Split DeepGlobe tiles (Kaggle or torchgeo layout) and cache class-id crops with a manifest.")
    p.add_argument("--root", required=True, help="folder holding train/ (Kaggle) or data/training_data/ (torchgeo)")
    p.add_argument("--out", required=True, help="output folder: {train,val,test}/{images,masks}.npy, manifest, split")
    for split, default in (("train", "0.7"), ("val", "0.15"), ("test", "0.15")):
        p.add_argument(f"--{split}", type=_count_or_fraction, default=_count_or_fraction(default),
                       help=f"{split} images: a fraction (all three sum to 1) or a count")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the permutation of tile ids into splits")
    p.add_argument("--crop-train", type=int, default=1024, help="side of the training crops (grid from the top-left)")
    p.add_argument("--crop-test", type=int, default=2048, help="side of the one top-left val/test crop")
    p.add_argument("--subimage", type=int, default=256, help="subimage side DDU-Net models use on these crops")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("train", cmd_train, "Train one model on a dataset directory (train.npz, val.npz); resumable.")
    p.add_argument("--model", required=True, help="model spec, e.g. ddunet_D3_F16_CY or unet_D3")
    p.add_argument("--data", required=True, help="dataset directory with train.npz, val.npz, manifest.json "
                   "(or a prepared DeepGlobe folder with train/, val/, manifest.json)")
    p.add_argument("--run-dir", required=True, help="directory for best.pt, last.pt (resume) and history.csv")
    p.add_argument("--summary", required=True, help="where to write the training summary JSON")
    p.add_argument("--lr", type=float, default=0.008, help="Adam learning rate")
    p.add_argument("--max-epochs", type=int, default=40, help="epochs at most")
    p.add_argument("--min-epochs", type=int, default=20, help="no early stopping before this epoch")
    p.add_argument("--early-stopping-patience", type=int, default=8,
                   help="stop after this many epochs without a lower validation loss")
    p.add_argument("--lr-patience", type=int, default=3, help="epochs without improvement before the LR decays")
    p.add_argument("--lr-factor", type=float, default=0.5, help="factor the LR is multiplied by when it decays")
    p.add_argument("--batch-size", type=int, default=16, help="training batch size")
    p.add_argument("--eval-batch-size", type=int, default=64, help="batch size of the validation passes")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout probability of the model")
    p.add_argument("--loss", choices=["macro", "macro_present", "micro"], default="macro",
                   help="dice reduction: macro = smp DiceLoss (absent classes 0, mean over all classes), "
                        "macro_present = mean over the classes present in the batch, micro = journal Eq. (1)")
    p.add_argument("--seed", type=int, default=0, help="training seed (initialisation, batch order, dropout)")
    p.add_argument("--grad-clip-norm", type=float, default=None, metavar="MAX",
                   help="clip the global gradient norm to MAX before each step (the authors' synthetic driver: "
                        "1.0; journal Table 10 names none, so off by default)")
    p.add_argument("--distributed", action="store_true",
                   help="split DDU-Net's subimages over the ranks started by torchrun "
                        "(torchrun --nproc-per-node P -m ddubench train --distributed ...)")
    p.add_argument("--bn", choices=["sync", "local"], default="sync",
                   help="distributed BatchNorm statistics: over all ranks (exactly one device's training) or per rank")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model in channels-last layout (single process; ~2x faster CPU steps "
                        "after 15-45 s of compilation)")
    p.add_argument("--amp", choices=["off", "on", "auto"], default="off",
                   help="mixed precision (float16 autocast + GradScaler): auto = on CUDA only, float32 on the CPU")
    p.add_argument("--weights", metavar="PATH",
                   help="local torchvision ImageNet state-dict file for a resnetddunet encoder (never downloaded)")
    p.add_argument("--subimage", type=int, metavar="N",
                   help="train on N x N subimages instead of the dataset's subimage size (kept in the checkpoint)")
    p.add_argument("--init-from", metavar="PATH",
                   help="start from the weights of this checkpoint, loaded non-strictly (e.g. GLNet's previous "
                        "stage); unmatched keys are listed in the summary")
    _add_runtime(p)

    p = add("evaluate", cmd_evaluate, "Score a checkpoint on a test split (confusion matrix -> IoU per class, mIoU).")
    p.add_argument("--checkpoint", required=True, help="checkpoint to score, e.g. runs/x/best.pt")
    p.add_argument("--data", required=True, help="test split, e.g. data/.../k6/test.npz or data/.../deepglobe/test")
    p.add_argument("--out", required=True, help="evaluation JSON to write")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.add_argument("--subimage", type=int, metavar="N",
                   help="apply the model to N x N subimages instead of its training subimage size")
    _add_runtime(p)

    p = add("predictions", cmd_predictions, "Qualitative figure: inputs, ground truth and predictions of several models.")
    p.add_argument("--checkpoints", nargs="+", required=True, help="one checkpoint per model shown, in order")
    p.add_argument("--data", required=True, help="test split file")
    p.add_argument("--examples", type=int, default=3, help="test images shown")
    p.add_argument("--pdf", required=True, help="figure PDF to write")
    p.add_argument("--csv", required=True, help="per-example line IoU of each model")
    _add_runtime(p)

    p = add("deepglobe-predictions", cmd_deepglobe_predictions,
            "Journal Figs. 14/15: DeepGlobe test crops, true masks, predictions and error maps of several models.")
    p.add_argument("--checkpoints", nargs="+", required=True, help="one checkpoint per model shown, in order")
    p.add_argument("--subimages", nargs="+", type=_subimage_choice, required=True,
                   help="per checkpoint: whole (the whole crop), own (its training subimages) or a side in px")
    p.add_argument("--data", required=True, help="prepared DeepGlobe split folder, e.g. data/cpu/deepglobe/test")
    p.add_argument("--examples", type=int, default=2, help="test crops shown")
    p.add_argument("--pdf14", required=True, help="Fig. 14 PDF to write (predictions)")
    p.add_argument("--csv14", required=True, help="what Fig. 14 drew, with each example's mIoU per model")
    p.add_argument("--pdf15", required=True, help="Fig. 15 PDF to write (error maps)")
    p.add_argument("--csv15", required=True, help="what Fig. 15 drew, with correct/wrong/unknown pixels")
    _add_runtime(p)

    p = add("examples", cmd_examples,
            "Journal Figs. 5/6: example images and masks (synthetic with red subimage borders, or DeepGlobe crops).")
    p.add_argument("kind", choices=["synthetic", "deepglobe"], help="journal Fig. 5 (synthetic) or Fig. 6 (DeepGlobe)")
    p.add_argument("--data", required=True, help="synthetic test.npz, or a prepared DeepGlobe split folder")
    p.add_argument("--examples", type=int, default=2, help="examples shown")
    p.add_argument("--pdf", required=True, help="figure PDF to write")
    p.add_argument("--csv", required=True, help="which examples were drawn, with class pixel counts")

    p = add("table", cmd_table, "Build a results table CSV (+ .meta.json provenance sidecar).")
    p.add_argument("name", choices=["table7", "table8", "table10", "fig9", "fig10", "fig11", "protocol", "scaling",
                                    "throughput", *ANALYSIS_TABLES,
                                    *DEEPGLOBE_TABLES, *BASELINE_TABLES],
                   help="which table: journal table<N>, fig<N> data, or one of ours (scaling, throughput, protocol)")
    p.add_argument("--data", help="prepared DeepGlobe folder with manifest.json (table3)")
    p.add_argument("--out", required=True, help="CSV to write (the sidecar goes beside it)")
    p.add_argument("--config", help="configuration file the table belongs to (recorded in the sidecar)")
    p.add_argument("--evals", nargs="*", help="evaluation JSON files (fig9, fig10, fig11; table1/table2: "
                   "train.json, eval_train.json, eval_test.json of every run)")
    p.add_argument("--scores", nargs="*", help="table7: test evaluation JSONs of the rows' trained models")
    p.add_argument("--ceilings", nargs="*", help="fig9, fig11, protocol: receptive-field ceiling JSONs (`ddubench "
                   "ceiling`) of the models' classes on their test data (column iou_line_ceiling)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for measurements (fig7)")
    p.add_argument("--device", help="device fig7 measures (cpu, cuda, cuda:N, auto; default: the config's fig7.device)")

    p = add("figure", cmd_figure, "Draw a figure PDF from its results CSV.")
    p.add_argument("name", choices=["fig9", "fig11", *FIGURE_DRAWERS], help="which figure")
    p.add_argument("--csv", required=True, help="results CSV the figure is drawn from")
    p.add_argument("--out", required=True, help="figure PDF to write")

    p = add("measure", cmd_measure, "Measure a model: parameter count, or training-step time on random data.")
    p.add_argument("what", choices=["params", "step-time"], help="parameter count or training-step time")
    p.add_argument("--model", required=True, help="model spec, e.g. ddunet_D3_F16_CY")
    p.add_argument("--k", type=int, default=2, help="subimages per image (step-time)")
    p.add_argument("--subimage-size", type=int, default=32, help="side of one square subimage in pixels")
    p.add_argument("--batch-size", type=int, default=16, help="step-time: batch size")
    p.add_argument("--warmup", type=int, default=3, help="step-time: untimed steps first")
    p.add_argument("--repeats", type=int, default=10, help="step-time: timed steps")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="step-time: time the torch.compile'd step (train --compile)")
    p.add_argument("--distributed", action="store_true",
                   help="step-time: the spatially parallel step of `train --distributed` over the ranks of torchrun "
                        "(torchrun --nproc-per-node P -m ddubench measure step-time --distributed ...)")
    p.add_argument("--out", help="step-time: also write the record as JSON")
    p.add_argument("--device", default="cpu", help="step-time: cpu, cuda, cuda:N or auto (CUDA timed "
                   "synchronised); with --distributed cpu, cuda or auto (each rank on cuda:LOCAL_RANK)")

    p = add("inference", cmd_inference,
            "Peak memory and time of one model's forward pass on one image on one device (random weights, batch 1; "
            "journal Table 7's one-device rows).")
    p.add_argument("--model", required=True, help="model spec, e.g. resnetddunet_R18_F256_CY, glnet, fctl")
    p.add_argument("--resolution", type=_resolution, required=True, help="HEIGHTxWIDTH of the image")
    p.add_argument("--subimage-size", type=int, default=None, help="DDU-Net subimage side (default: whole image)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    p.add_argument("--repeats", type=int, default=3, help="timed passes")
    p.add_argument("--out", required=True, help="JSON with the record (same shape as `ddubench scaling`)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")

    p = add("scaling", cmd_scaling,
            "Per-rank inference peak memory and time of a DDU-Net split over the ranks of torchrun "
            "(torchrun --standalone --nproc-per-node P -m ddubench scaling ...; gloo on CPU, NCCL on GPUs).")
    p.add_argument("--model", required=True, help="DDU-Net spec, e.g. ddunet_D3_F16_CY")
    p.add_argument("--resolutions", type=_resolution, nargs="+", required=True, help="HEIGHTxWIDTH images")
    p.add_argument("--subimage-size", type=int, default=32, help="side of one square subimage in pixels")
    p.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    p.add_argument("--repeats", type=int, default=5, help="timed passes")
    p.add_argument("--out", required=True, help="JSON with every rank's record (written by rank 0)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda/auto (NCCL, cuda:LOCAL_RANK)")

    p = add("receptive-field", cmd_receptive_field,
            "Receptive field of one output pixel: the paper's convention, the textbook formula, the exact range.")
    p.add_argument("model", metavar="MODEL-SPEC", help="model spec, e.g. unet_D3 or ddunet_D3_F16_CY")
    p.add_argument("--subimage-size", type=int, default=32, help="subimage side subimage models are built with")

    p = add("ceiling", cmd_ceiling,
            "Receptive-field ceiling of the synthetic task: the best expected line IoU a model of this wiring can "
            "reach when each output pixel knows only its dependency region (JSON + provenance).")
    p.add_argument("--model", required=True, metavar="MODEL-SPEC",
                   help="whose dependency regions count, e.g. unet_D3, ddunet_D3_F0_CY, ddunet_D3_F1_CY")
    p.add_argument("--k", type=int, required=True, help="subimages per image of the synthetic data")
    p.add_argument("--rule", default="journal", choices=["journal", "thesis"], help="circle placement rule of the data")
    p.add_argument("--subimage-size", type=int, default=32, help="subimage side in pixels")
    p.add_argument("--seed", type=int, default=0, help="data seed (the run's synthetic.data_seed)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split whose images the ceiling is "
                   "scored on")
    p.add_argument("--images", type=int, default=200, help="images of the split the ceiling is scored on")
    p.add_argument("--background-samples", type=int, default=3000,
                   help="generator samples that estimate P(line | no circle visible)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", required=True, help="JSON to write, e.g. results/cpu/ceilings/k6/unet_D3.json")

    p = add("compare", cmd_compare, "Compare a Fig. 9/11 results CSV with the paper (Markdown summary).")
    p.add_argument("csvs", nargs="+", help="e.g. results/fig9_heatmap.csv results/fig11_generalization.csv")

    p = add("cnn-dnn-classification", cmd_cnn_dnn_classification,
            "CNN-DNN image classification (seed 004 Tables 1-2): local CNNs, combiners, DNN, global CNN, "
            "coherent and transfer variants -> CSV (+ .meta.json).")
    p.add_argument("--config", required=True, help="configuration file whose cnn_dnn section is run")
    p.add_argument("--out", required=True, help="CSV to write, e.g. results/cpu/cnn_dnn_classification.csv")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (small models: one is fastest)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--no-progress", action="store_true", help="no per-model log lines")

    p = add("validate-config", cmd_validate_config, "Check configuration files against the schema.")
    p.add_argument("configs", nargs="+", help="configuration files, e.g. config/cpu.yaml")
    return parser


# Output paths of each command (argparse dests), checked before any work so that an unwritable one stops
# the command with one line and nothing else written.
OUTPUT_FILES = {
    "train": ("summary",), "evaluate": ("out",), "predictions": ("pdf", "csv"),
    "deepglobe-predictions": ("pdf14", "csv14", "pdf15", "csv15"), "examples": ("pdf", "csv"), "table": ("out",),
    "figure": ("out",), "measure": ("out",), "inference": ("out",), "scaling": ("out",),
    "cnn-dnn-classification": ("out",),
}
OUTPUT_FOLDERS = {"generate-synthetic": ("out",), "deepglobe-fake": ("out",), "deepglobe-prepare": ("out",),
                  "train": ("run_dir",)}


def _check_outputs(args: argparse.Namespace) -> None:
    from .io import check_writable, check_writable_folder

    for check, table in ((check_writable, OUTPUT_FILES), (check_writable_folder, OUTPUT_FOLDERS)):
        for dest in table.get(args.command, ()):
            if getattr(args, dest, None):
                check(getattr(args, dest))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_torch()
        _check_outputs(args)
        args.handler(args)
    except DdubenchError as err:
        print(f"ddubench: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read or write the checks above could not foresee, e.g. a full disk
        if err.filename is None:
            raise
        print(f"ddubench: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddubench: interrupted; finished checkpoints and outputs are kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
