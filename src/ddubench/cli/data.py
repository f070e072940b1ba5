"""Subcommands that write datasets and example figures, and check configuration files."""

from __future__ import annotations

import argparse

from ._shared import Commands, count_or_fraction, positive_int


def cmd_generate_synthetic(args: argparse.Namespace) -> None:
    from ..data.synthetic import SyntheticSpec, write_dataset

    spec = SyntheticSpec(k=args.k, rule=args.rule, subimage_size=args.subimage_size, seed=args.seed,
                         line_width=args.line_width)
    write_dataset(spec, {"train": args.train, "val": args.val, "test": args.test}, args.out)
    print(f"wrote {args.out}")


def cmd_deepglobe_fake(args: argparse.Namespace) -> None:
    from ..data.fake_deepglobe import write_fake_deepglobe

    write_fake_deepglobe(args.out, args.images, args.size, args.seed)
    print(f"wrote {args.images} fake DeepGlobe-format tiles ({args.size}x{args.size}) to {args.out}/train")


def cmd_deepglobe_prepare(args: argparse.Namespace) -> None:
    from ..data.deepglobe import SPLITS, PrepareSpec, prepare

    spec = PrepareSpec(train=args.train, val=args.val, test=args.test, split_seed=args.split_seed,
                       crop_train=args.crop_train, crop_test=args.crop_test, subimage=args.subimage)
    manifest = prepare(args.root, args.out, spec, progress=not args.no_progress)
    crops = ", ".join(f"{split} {len(manifest['splits'][split]['crops'])}" for split in SPLITS)
    print(f"wrote {args.out}: crops {crops}")


def cmd_inria_fake(args: argparse.Namespace) -> None:
    from ..data.fake_inria import write_fake_inria

    write_fake_inria(args.out, args.tiles_per_city, args.size, args.seed)
    print(f"wrote {args.tiles_per_city} generated Inria-format tiles ({args.size}x{args.size}) per city to "
          f"{args.out}/train")


def cmd_inria_prepare(args: argparse.Namespace) -> None:
    from ..data.inria import PrepareSpec, prepare
    from ..data.prepared import SPLITS

    spec = PrepareSpec(val=args.val, test=args.test, split_seed=args.split_seed, crop_train=args.crop_train,
                       overlap=args.overlap, crop_eval=args.crop_eval, subimage=args.subimage)
    manifest = prepare(args.root, args.out, spec, progress=not args.no_progress)
    crops = ", ".join(f"{split} {len(manifest['splits'][split]['crops'])}" for split in SPLITS)
    print(f"wrote {args.out}: crops {crops}")


def cmd_examples(args: argparse.Namespace) -> None:
    from ..report import deepglobe_figures, inria_figures

    draw = {"synthetic": deepglobe_figures.synthetic_examples, "deepglobe": deepglobe_figures.deepglobe_examples,
            "inria": inria_figures.inria_examples}[args.kind]
    draw(args.data, args.examples, args.pdf, args.csv)
    print(f"wrote {args.pdf} and {args.csv}")


def cmd_validate_config(args: argparse.Namespace) -> None:
    from ..config import load_config

    for path in args.configs:
        load_config(path)
        print(f"{path}: valid")


def register(commands: Commands) -> None:
    """generate-synthetic, deepglobe-fake, deepglobe-prepare, inria-fake, inria-prepare, examples, validate-config."""
    p = commands.add("generate-synthetic", cmd_generate_synthetic,
                     "Write the synthetic circles-and-line dataset for one k (train/val/test .npz + manifest).",
                     folders=("out",))
    p.add_argument("--k", type=int, required=True, help="subimages per image; images are (32k)x32")
    p.add_argument("--rule", choices=["journal", "thesis"], default="journal",
                   help="circle placement: journal = any other subimage, width 3; thesis = <= 1 subimage between, width 2")
    p.add_argument("--line-width", type=int, default=None,
                   help="line width in pixels instead of the rule's (same circle placements at every width)")
    p.add_argument("--subimage-size", type=int, default=32, help="side of one square subimage in pixels")
    p.add_argument("--train", type=positive_int, default=4000, help="training images")
    p.add_argument("--val", type=positive_int, default=1000, help="validation images")
    p.add_argument("--test", type=positive_int, default=1000, help="test images")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator (data, not training)")
    p.add_argument("--out", required=True, help="output directory")

    p = commands.add("deepglobe-fake", cmd_deepglobe_fake,
                     "Write generated DeepGlobe-format tiles (<out>/train/<id>_sat.jpg + <id>_mask.png); NOT DeepGlobe data.",
                     folders=("out",))
    p.add_argument("--out", required=True, help="root folder of the fake tiles")
    p.add_argument("--images", type=int, default=8, help="number of tiles")
    p.add_argument("--size", type=int, default=2448, help="tile side in pixels (DeepGlobe: 2448)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tile generator")

    p = commands.add("deepglobe-prepare", cmd_deepglobe_prepare,
                     "Split DeepGlobe tiles (Kaggle or torchgeo layout) and cache class-id crops with a manifest.",
                     folders=("out",))
    p.add_argument("--root", required=True, help="folder holding train/ (Kaggle) or data/training_data/ (torchgeo)")
    p.add_argument("--out", required=True, help="output folder: {train,val,test}/{images,masks}.npy, manifest, split")
    for split, default in (("train", "0.7"), ("val", "0.15"), ("test", "0.15")):
        p.add_argument(f"--{split}", type=count_or_fraction, default=count_or_fraction(default),
                       help=f"{split} images: a fraction (all three sum to 1) or a count")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the permutation of tile ids into splits")
    p.add_argument("--crop-train", type=int, default=1024, help="side of the training crops (grid from the top-left)")
    p.add_argument("--crop-test", type=int, default=2048, help="side of the one top-left val/test crop")
    p.add_argument("--subimage", type=int, default=256, help="subimage side DDU-Net models use on these crops")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = commands.add("inria-fake", cmd_inria_fake,
                     "Write generated Inria-format tiles (<out>/train/images/<city><n>.tif + train/gt/); NOT Inria data.",
                     folders=("out",))
    p.add_argument("--out", required=True, help="root folder of the generated tiles")
    p.add_argument("--tiles-per-city", type=int, default=6, help="tiles for each of the five cities (Inria: 36)")
    p.add_argument("--size", type=int, default=1024, help="tile side in pixels (Inria: 5000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tile generator")

    p = commands.add("inria-prepare", cmd_inria_prepare,
                     "Split Inria tiles per city and cache building patches (train) and crops (val/test) with a manifest.",
                     folders=("out",))
    p.add_argument("--root", required=True, help="folder holding train/images/*.tif and train/gt/*.tif")
    p.add_argument("--out", required=True, help="output folder: {train,val,test}/{images,masks}.npy, manifest, split")
    p.add_argument("--val", type=int, default=5, help="validation tiles per city (thesis 5)")
    p.add_argument("--test", type=int, default=5, help="test tiles per city (thesis 5); the rest train")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the per-city permutation of the tiles")
    p.add_argument("--crop-train", type=int, default=512, help="side of the training patches (thesis 512)")
    p.add_argument("--overlap", type=int, default=32, help="overlap of neighbouring training patches (thesis 32)")
    p.add_argument("--crop-eval", type=int, default=2048, help="side of the val/test crops, a grid from the top-left")
    p.add_argument("--subimage", type=int, default=128, help="subimage side DDU-Net models use (thesis 128)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = commands.add("examples", cmd_examples,
                     "Journal Figs. 5/6, thesis Fig. 5.6: example images and masks (synthetic with red subimage "
                     "borders, DeepGlobe crops or Inria patches).",
                     outputs=("pdf", "csv"))
    p.add_argument("kind", choices=["synthetic", "deepglobe", "inria"],
                   help="journal Fig. 5 (synthetic), Fig. 6 (DeepGlobe) or thesis Fig. 5.6 (Inria)")
    p.add_argument("--data", required=True, help="synthetic test.npz, or a prepared DeepGlobe or Inria split folder")
    p.add_argument("--examples", type=int, default=2, help="examples shown")
    p.add_argument("--pdf", required=True, help="figure PDF to write")
    p.add_argument("--csv", required=True, help="which examples were drawn, with class pixel counts")

    p = commands.add("validate-config", cmd_validate_config, "Check configuration files against the schema.")
    p.add_argument("configs", nargs="+", help="configuration files, e.g. config/cpu.yaml")
