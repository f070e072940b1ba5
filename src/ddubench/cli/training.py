"""Subcommands that train and evaluate models and draw their predictions."""

from __future__ import annotations

import argparse

from ..device import resolve_device
from ..errors import DdubenchError
from ._shared import Commands, add_runtime, set_threads, subimage_choice


def _stop_on_sigterm(rank: int) -> None:
    """Turn the launcher's SIGTERM (sent when another rank failed) into a one-line project error."""
    import signal

    def handler(signum, frame):  # noqa: ARG001
        raise DdubenchError(f"rank {rank}: stopped by the launcher, most likely because another rank failed "
                            "(see its error); finished epochs are kept and a rerun resumes from them")

    signal.signal(signal.SIGTERM, handler)


def cmd_train(args: argparse.Namespace) -> None:
    from ..training.run import train_model
    from ..training.trainer import TrainConfig

    set_threads(args.threads)
    config = TrainConfig(
        lr=args.lr, max_epochs=args.max_epochs, min_epochs=args.min_epochs,
        early_stopping_patience=args.early_stopping_patience, lr_patience=args.lr_patience,
        lr_factor=args.lr_factor, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        dropout=args.dropout, loss=args.loss, seed=args.seed, grad_clip_norm=args.grad_clip_norm,
        augment=args.augment,
    )

    def train(ctx=None) -> dict:
        device = ctx.device if ctx else resolve_device(args.device)
        return train_model(args.model, args.data, args.run_dir, config, args.summary,
                           device=device, progress=not args.no_progress, ctx=ctx, bn=args.bn,
                           compile_model=args.compile, amp=args.amp, weights=args.weights,
                           subimage=args.subimage, init_from=args.init_from)

    if args.distributed:
        from ..distributed.runtime import distributed

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
    from ..evaluation.run import evaluate_checkpoint

    set_threads(args.threads)
    record = evaluate_checkpoint(args.checkpoint, args.data, args.out, batch_size=args.batch_size,
                                 device=resolve_device(args.device), progress=not args.no_progress,
                                 subimage=args.subimage)
    iou = ", ".join(f"{name} {value:.4f}" for name, value in record["scores"]["iou"].items() if value is not None)
    print(f"{record['label']} on k={record['test_k']}: IoU {iou}; mIoU {record['scores']['miou']:.4f}")


def cmd_predictions(args: argparse.Namespace) -> None:
    from ..evaluation.run import prediction_figure

    set_threads(args.threads)
    prediction_figure(args.checkpoints, args.data, args.examples, args.pdf, args.csv)
    print(f"wrote {args.pdf} and {args.csv}")


def cmd_deepglobe_predictions(args: argparse.Namespace) -> None:
    from ..report.deepglobe_figures import prediction_figures

    if len(args.subimages) != len(args.checkpoints):
        raise DdubenchError(f"--subimages has {len(args.subimages)} entries for {len(args.checkpoints)} --checkpoints; "
                            "give one (whole, own or a side in px) per checkpoint")
    set_threads(args.threads)
    prediction_figures(args.checkpoints, args.subimages, args.data, args.examples, args.pdf14, args.csv14,
                       args.pdf15, args.csv15, device=resolve_device(args.device))
    print(f"wrote {args.pdf14}, {args.pdf15} and their CSVs")


def cmd_inria_predictions(args: argparse.Namespace) -> None:
    from ..report.inria_figures import inria_predictions

    set_threads(args.threads)
    inria_predictions(args.checkpoints, args.data, args.side, args.pdf, args.csv, device=resolve_device(args.device))
    print(f"wrote {args.pdf} and {args.csv}")


def cmd_inria_feature_maps(args: argparse.Namespace) -> None:
    from ..report.inria_figures import feature_map_figures

    set_threads(args.threads)
    outs = {"fig7_10": args.pdf7_10, "fig7_11": args.pdf7_11, "fig7_12": args.pdf7_12, "fig7_13": args.pdf7_13}
    feature_map_figures(args.checkpoints, args.data, args.side, outs, args.csv, device=resolve_device(args.device))
    print(f"wrote {', '.join(map(str, outs.values()))} and {args.csv}")


def cmd_cnn_dnn_classification(args: argparse.Namespace) -> None:
    from baselines.cnn_dnn_classification import write_classification_table

    from ..config import load_config

    set_threads(args.threads)
    config = load_config(args.config)
    write_classification_table(config["cnn_dnn"], args.out, config=config, config_file=args.config,
                               device=resolve_device(args.device), progress=not args.no_progress)
    print(f"wrote {args.out}")


def _add_train(commands: Commands) -> None:
    p = commands.add("train", cmd_train, "Train one model on a dataset directory (train.npz, val.npz); resumable.",
                     outputs=("summary",), folders=("run_dir",))
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
    p.add_argument("--lr-patience", type=int, default=3, help="the LR decays when more than this many epochs in a row bring no improvement "
                   "(PyTorch ReduceLROnPlateau's patience)")
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
    p.add_argument("--augment", action="store_true",
                   help="flip each training image with its mask horizontally and vertically (p = 1/2 each) and turn "
                        "it by 0-3 quarter turns (thesis Inria/DeepGlobe; square images only)")
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
    add_runtime(p)


def cmd_positional_encoding(args: argparse.Namespace) -> None:
    import time

    from ..io import write_json
    from ..provenance import provenance, utc_now
    from ..training.positional import ProbeConfig, train_probe

    set_threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    config = ProbeConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, train=args.train, val=args.val,
                         seed=args.seed, data_seed=args.data_seed)
    record = train_probe(args.padding, config, progress=not args.no_progress)
    write_json(args.out, {**record, "provenance": provenance(
        started=started, wall_time_s=time.perf_counter() - clock, seeds=[args.seed, args.data_seed],
        method="positional-encoding probe (thesis §6.1.3): MSE regression of the 4 pixels' coordinates, Adam at a "
               "fixed lr, scores of the last epoch's model on the validation images")})
    scores = record["scores"]
    print(f"probe with {args.padding} padding: validation MSE {scores['mse']:.1f} px^2, sqrt(2 MSE) "
          f"{scores['distance_sqrt_2mse']:.2f} px, mean distance {scores['mean_distance']:.2f} px")


def _add_positional_encoding(commands: Commands) -> None:
    from ..models.positional_probe import PADDINGS
    from ..training.positional import ProbeConfig

    defaults = ProbeConfig()
    p = commands.add("positional-encoding", cmd_positional_encoding,
                     "Thesis Tables 6.2-6.3: train the positional-encoding probe (4 pixels on 64x64, a fully "
                     "convolutional network with global average pooling) with one padding; JSON + provenance.",
                     outputs=("out",))
    p.add_argument("--padding", required=True, choices=list(PADDINGS), help="padding of every 3x3 convolution")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs (no early stopping)")
    p.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate (constant)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="training batch size")
    p.add_argument("--train", type=int, default=defaults.train, help="training images")
    p.add_argument("--val", type=int, default=defaults.val, help="validation images (scored)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the weights and the batch order")
    p.add_argument("--data-seed", type=int, default=defaults.data_seed,
                   help="seed of the training images (validation: this + 1)")
    p.add_argument("--out", required=True, help="JSON to write, e.g. results/cpu/thesis/positional_same.json")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs stay readable)")


def register(commands: Commands) -> None:
    """train, evaluate, predictions, deepglobe-predictions, cnn-dnn-classification, positional-encoding."""
    _add_train(commands)
    _add_positional_encoding(commands)

    p = commands.add("evaluate", cmd_evaluate,
                     "Score a checkpoint on a test split (confusion matrix -> IoU per class, mIoU).", outputs=("out",))
    p.add_argument("--checkpoint", required=True, help="checkpoint to score, e.g. runs/x/best.pt")
    p.add_argument("--data", required=True, help="test split, e.g. data/.../k6/test.npz or data/.../deepglobe/test")
    p.add_argument("--out", required=True, help="evaluation JSON to write")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.add_argument("--subimage", type=int, metavar="N",
                   help="apply the model to N x N subimages instead of its training subimage size")
    add_runtime(p)

    p = commands.add("predictions", cmd_predictions,
                     "Qualitative figure: inputs, ground truth and predictions of several models.",
                     outputs=("pdf", "csv"))
    p.add_argument("--checkpoints", nargs="+", required=True, help="one checkpoint per model shown, in order")
    p.add_argument("--data", required=True, help="test split file")
    p.add_argument("--examples", type=int, default=3, help="test images shown")
    p.add_argument("--pdf", required=True, help="figure PDF to write")
    p.add_argument("--csv", required=True, help="per-example line IoU of each model")
    add_runtime(p)

    p = commands.add("deepglobe-predictions", cmd_deepglobe_predictions,
                     "Journal Figs. 14/15: DeepGlobe test crops, true masks, predictions and error maps of several "
                     "models.", outputs=("pdf14", "csv14", "pdf15", "csv15"))
    p.add_argument("--checkpoints", nargs="+", required=True, help="one checkpoint per model shown, in order")
    p.add_argument("--subimages", nargs="+", type=subimage_choice, required=True,
                   help="per checkpoint: whole (the whole crop), own (its training subimages) or a side in px")
    p.add_argument("--data", required=True, help="prepared DeepGlobe split folder, e.g. data/cpu/deepglobe/test")
    p.add_argument("--examples", type=int, default=2, help="test crops shown")
    p.add_argument("--pdf14", required=True, help="Fig. 14 PDF to write (predictions)")
    p.add_argument("--csv14", required=True, help="what Fig. 14 drew, with each example's mIoU per model")
    p.add_argument("--pdf15", required=True, help="Fig. 15 PDF to write (error maps)")
    p.add_argument("--csv15", required=True, help="what Fig. 15 drew, with correct/wrong/unknown pixels")
    add_runtime(p)

    p = commands.add("inria-predictions", cmd_inria_predictions,
                     "Thesis Fig. 7.9: a piece of the first Inria test crop, its mask and each model's prediction.",
                     outputs=("pdf", "csv"))
    p.add_argument("--checkpoints", nargs="+", required=True,
                   help="the models shown, in order (thesis: w/ communication, w/o communication, U-Net)")
    p.add_argument("--data", required=True, help="prepared Inria test folder, e.g. data/cpu/inria/test")
    p.add_argument("--side", type=int, default=512, help="side of the top-left piece shown (thesis 512)")
    p.add_argument("--pdf", required=True, help="figure PDF to write")
    p.add_argument("--csv", required=True, help="what it drew, with each model's IoU on the piece")
    add_runtime(p)

    p = commands.add("inria-feature-maps", cmd_inria_feature_maps,
                     "Thesis Figs. 7.10-7.13: the image, feature maps after the last down and second up block, and "
                     "the communication network's input and output, with each map's subimage-border ratio.",
                     outputs=("pdf7_10", "pdf7_11", "pdf7_12", "pdf7_13", "csv"))
    p.add_argument("--checkpoints", nargs="+", required=True, help="the models whose maps are drawn, one row each")
    p.add_argument("--data", required=True, help="prepared Inria test folder, e.g. data/cpu/inria/test")
    p.add_argument("--side", type=int, default=512, help="side of the top-left piece of the first crop (thesis 512)")
    for number in (10, 11, 12, 13):
        p.add_argument(f"--pdf7-{number}", dest=f"pdf7_{number}", required=True, help=f"thesis Fig. 7.{number} PDF")
    p.add_argument("--csv", required=True, help="every drawn channel: range and border ratio")
    add_runtime(p)

    p = commands.add("cnn-dnn-classification", cmd_cnn_dnn_classification,
                     "CNN-DNN image classification (seed 004 Tables 1-2): local CNNs, combiners, DNN, global CNN, "
                     "coherent and transfer variants -> CSV (+ .meta.json).", outputs=("out",))
    p.add_argument("--config", required=True, help="configuration file whose cnn_dnn section is run")
    p.add_argument("--out", required=True, help="CSV to write, e.g. results/cpu/cnn_dnn_classification.csv")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (small models: one is fastest)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--no-progress", action="store_true", help="no per-model log lines")
