"""Subcommands that analyse model wiring without training: receptive field and receptive-field ceiling."""

from __future__ import annotations

import argparse
import time

from ..errors import DdubenchError
from ._shared import Commands, set_threads


def cmd_receptive_field(args: argparse.Namespace) -> None:
    from ..analysis.receptive_field import receptive_field
    from ..models import DDUNet, ModelSpec, build_model

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
    from ..analysis.ceiling import line_iou_ceiling, support_class, support_model
    from ..data.synthetic import SyntheticSpec
    from ..io import write_json
    from ..models import ModelSpec
    from ..provenance import provenance, utc_now

    set_threads(args.threads)
    started, clock = utc_now(), time.perf_counter()
    data = SyntheticSpec(k=args.k, rule=args.rule, subimage_size=args.subimage_size, seed=args.seed,
                         line_width=args.line_width)
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


def register(commands: Commands) -> None:
    """receptive-field, ceiling."""
    p = commands.add("receptive-field", cmd_receptive_field,
                     "Receptive field of one output pixel: the paper's convention, the textbook formula, the exact range.")
    p.add_argument("model", metavar="MODEL-SPEC", help="model spec, e.g. unet_D3 or ddunet_D3_F16_CY")
    p.add_argument("--subimage-size", type=int, default=32, help="subimage side subimage models are built with")

    p = commands.add("ceiling", cmd_ceiling,
                     "Receptive-field ceiling of the synthetic task: the best expected line IoU a model of this wiring "
                     "can reach when each output pixel knows only its dependency region (JSON + provenance).",
                     outputs=("out",))
    p.add_argument("--model", required=True, metavar="MODEL-SPEC",
                   help="whose dependency regions count, e.g. unet_D3, ddunet_D3_F0_CY, ddunet_D3_F1_CY")
    p.add_argument("--k", type=int, required=True, help="subimages per image of the synthetic data")
    p.add_argument("--rule", default="journal", choices=["journal", "thesis"], help="circle placement rule of the data")
    p.add_argument("--line-width", type=int, default=None, help="line width of the data instead of the rule's")
    p.add_argument("--subimage-size", type=int, default=32, help="subimage side in pixels")
    p.add_argument("--seed", type=int, default=0, help="data seed (the run's synthetic.data_seed)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="split whose images the ceiling is scored on")
    p.add_argument("--images", type=int, default=200, help="images of the split the ceiling is scored on")
    p.add_argument("--background-samples", type=int, default=3000,
                   help="generator samples that estimate P(line | no circle visible)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", required=True, help="JSON to write, e.g. results/cpu/ceilings/k6/unet_D3.json")
