"""DeepGlobe tables: journal Table 3 (class pixel counts) from prepared data, Table 9 (ResNet DDU-Net modules),
Table 6 (hyperparameters of the configuration that ran) and Fig. 13 (test mIoU over the P x F x C grid)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..analysis.params import count_parameters
from ..data.deepglobe import CLASSES, IGNORE_INDEX, SPLITS
from ..errors import DataError
from ..io import read_json
from ..models import CoarseNetwork, ModelSpec, build_model
from ..training.losses import CORRECTED, DEFINITIONS
from . import paper
from .tables import trained_over_note

TABLE9_SUBIMAGE = 256  # journal Table 9 gives feature-map sizes for 256x256 subimages
TABLE9_FEATURES = 256  # the totals of journal Table 7 use F = 256


def _source_note(manifest: dict[str, Any]) -> str:
    """Where the counted tiles come from; generated tiles are flagged so they are never taken for DeepGlobe."""
    fake = manifest.get("fake")
    if fake:
        return (f"GENERATED TILES, NOT DEEPGLOBE: {fake['images']} fake {fake['size']}x{fake['size']} px tiles "
                f"(ddubench fake generator, seed {fake['seed']}); the shares describe the generator, which draws "
                "classes around the paper's shares, and say nothing about the dataset")
    tiles = len(manifest["source"]["tiles"])
    return (f"the {tiles} labelled tiles under {manifest['source']['root']}; the paper's counts (about 6.87 G px) "
            "cover 1146 tiles, the labelled ones plus the challenge's validation and test tiles")


def read_manifest(prepared_dir: str | Path) -> dict[str, Any]:
    """The manifest of a prepared DeepGlobe folder; a clear error if it is missing."""
    manifest_path = Path(prepared_dir) / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} does not exist; prepare the DeepGlobe data first "
                        "(`ddubench deepglobe-prepare`)")
    return read_json(manifest_path)


def data_record(prepared_dir: str | Path) -> dict[str, Any]:
    """What Table 3 was counted on, for its sidecar (the preparation of generated tiles is temporary)."""
    manifest = read_manifest(prepared_dir)
    return {
        "root": manifest["source"]["root"], "layout": manifest["source"]["layout"], "fake": manifest["fake"],
        "spec": manifest["spec"], "ids": {split: sorted({c["id"] for c in manifest["splits"][split]["crops"]})
                                          for split in SPLITS},
        "files": {split: manifest["splits"][split]["files"] for split in SPLITS},
    }


def table3(prepared_dir: str | Path) -> pd.DataFrame:
    """Class pixel counts and shares: over the full masks of all split tiles, and over each split's crops."""
    manifest = read_manifest(prepared_dir)
    splits = manifest["splits"]
    source = _source_note(manifest)
    tile_counts = [sum(c) for c in zip(*(splits[s]["class_pixels_images"] for s in SPLITS))]
    scopes = [("tiles", sum(splits[s]["images"] for s in SPLITS), None, tile_counts, "full masks, before cropping")]
    for split in SPLITS:
        info = splits[split]
        scopes.append((f"{split} crops", info["images"], len(info["crops"]), info["class_pixels_crops"],
                       (f"{len(info['crops'])} crops of {info['crop_px']}x{info['crop_px']} px; "
                        "the paper gives no per-split counts")))
    rows = []
    for scope, images, crops, counts, what in scopes:
        total = sum(counts)
        for class_id, name in enumerate(CLASSES):
            in_paper = scope == "tiles"
            note = f"{what}; {source}"
            if class_id == IGNORE_INDEX:
                note += f"; unknown is class id {IGNORE_INDEX} here, left out of loss and metrics"
            rows.append({
                "scope": scope, "images": images, "crops": crops, "class_id": class_id, "class": name,
                "pixels_millions_paper": paper.TABLE3_PIXELS_MILLIONS[name] if in_paper else None,
                "pixels_millions_ours": counts[class_id] / 1e6,
                "proportion_pct_paper": paper.TABLE3_PROPORTION_PCT[name] if in_paper else None,
                "proportion_pct_ours": round(100 * counts[class_id] / total, 4) if total else None,
                "note": note,
            })
    return pd.DataFrame(rows).astype({"crops": "Int64"})


def _output_sizes(model: nn.Module, modules: dict[str, nn.Module]) -> dict[str, str]:
    """Spatial size of each named module's output for one 256x256 subimage (a shape-only pass on the meta device).

    The model is moved to the meta device: count its parameters before calling this.
    """
    sizes: dict[str, str] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: sizes.__setitem__(
        name, f"{out.shape[-2]}x{out.shape[-1]}")) for name, module in modules.items()]
    with torch.no_grad():
        model.to("meta").eval()(torch.zeros(1, 3, TABLE9_SUBIMAGE, TABLE9_SUBIMAGE, device="meta"))
    for hook in hooks:
        hook.remove()
    return sizes


def _resnet_rows(resnet: int) -> list[dict[str, Any]]:
    """Encoder blocks, inter-conv, up path and total of the ResNet DDU-Net with F = 256."""
    model = build_model(f"resnetddunet_R{resnet}_F{TABLE9_FEATURES}_CY", in_channels=3, num_classes=len(CLASSES),
                        subimage_size=(TABLE9_SUBIMAGE, TABLE9_SUBIMAGE))
    encoder, decoder = model.encoder, model.decoder
    c1, c2, c3, c4 = encoder.out_channels
    parts = {"block1": [encoder.block1], "block2": [encoder.block2], "block3": [encoder.block3],
             "block4": [encoder.block4], "inter-conv": [encoder.inter_conv], "up path": [decoder, model.head]}
    channels = {"block1": f"3-{c1}", "block2": f"{c1}-{c2}", "block3": f"{c2}-{c3}", "block4": f"{c3}-{c4}",
                "inter-conv": f"{c4}-{c4}-{c4}",
                "up path": "-".join(map(str, [c4, c3, c2, c1, decoder.out_channels, len(CLASSES)]))}
    params = {name: sum(count_parameters(module) for module in modules) for name, modules in parts.items()}
    trainable = {name: any(p.requires_grad for m in modules for p in m.parameters()) for name, modules in parts.items()}
    total = count_parameters(model)
    sizes = _output_sizes(model, {name: modules[-1] for name, modules in parts.items()})
    reference = paper.TABLE9_RESNET18 if resnet == 18 else {}
    rows = []
    for name in parts:
        note = "" if trainable[name] else "frozen torchvision block; its BatchNorm stays in eval mode by default"
        if name == "up path":
            note = "includes the final 1x1 convolution to 7 classes"
            note += ", as the paper's count does" if reference else ""
        if resnet != 18:
            note = "; ".join(filter(None, ["ResNet50 analogue (the journal Table 7 model), not in journal Table 9",
                                           note]))
        paper_channels, paper_size, paper_params = reference.get(name, (None, None, None))
        rows.append({
            "encoder": f"resnet{resnet}", "component": name, "F": None, "channels_paper": paper_channels,
            "channels_ours": channels[name], "kernel": None, "feature_map_px_paper": paper_size,
            "feature_map_px_ours": sizes[name], "params_paper": paper_params, "params_ours": params[name],
            "trainable": trainable[name], "note": note,
        })
    rows.append({
        "encoder": f"resnet{resnet}", "component": "total", "F": TABLE9_FEATURES, "channels_paper": None,
        "channels_ours": None, "kernel": None, "feature_map_px_paper": None, "feature_map_px_ours": None,
        "params_paper": paper.TABLE7_RESNET_TOTAL_PARAMS[resnet], "params_ours": total,
        "trainable": True,
        "note": f"encoder-decoder plus the F = {TABLE9_FEATURES} coarse network; journal Table 7 prints the "
                f"rounded total {paper.TABLE7_RESNET_TOTAL_PARAMS[resnet] / 1e6:g}M",
    })
    return rows


def table9() -> pd.DataFrame:
    """Journal Table 9 from the modules: ResNet18 (and ResNet50) DDU-Net parts and the coarse networks."""
    rows = _resnet_rows(18)
    for features, params_paper in paper.TABLE9_COARSE_PARAMS.items():
        rows.append({
            "encoder": "resnet18", "component": "coarse network", "F": features,
            "channels_paper": "-".join([str(features)] * 4), "channels_ours": "-".join([str(features)] * 4),
            "kernel": "5x5", "feature_map_px_paper": None, "feature_map_px_ours": None,
            "params_paper": params_paper, "params_ours": count_parameters(CoarseNetwork(features)),
            "trainable": True, "note": paper.TABLE9_ERRATA.get(features, ""),
        })
    rows += _resnet_rows(50)
    return pd.DataFrame(rows).astype({"F": "Int64", "params_paper": "Int64"})


# ------------------------------------------------------------------------------------ Table 6, Fig. 13

# Journal Table 6 (DeepGlobe hyperparameters) and what the journal text adds (Sec. V-B: mixed precision,
# 1024 px training crops, 2048 px test crops, every network trained three times, the best on the test set
# reported); thesis Table 7.10 where it differs or adds. None: the source does not give the value.
AUGMENTATION = "flips + quarter turns"
TABLE6_ROWS: tuple[tuple[str, object, object, str], ...] = (
    # (hyperparameter, journal, thesis Table 7.10, where the journal value comes from)
    ("lr", 0.001, 0.001, "journal Table 6 (thesis: maximum learning rate)"),
    ("max_epochs", 100, 50, "journal Table 6 (thesis: maximum number of epochs)"),
    ("dropout", 0.1, 0.1, "journal Table 6"),
    ("batch_size", 12, 8, "journal Table 6"),
    ("loss", "dice (Eq. 1)", None, "journal Table 6; the thesis table has no loss row (its text: dice loss)"),
    ("lr_patience", None, 5, "not in journal Table 6; the text of both says the LR is halved on a plateau"),
    ("early_stopping_patience", None, None, "not in journal Table 6; thesis Table 7.10 lists none ('-')"),
    ("min_epochs", None, None, "not in journal Table 6; thesis Table 7.10 lists none ('-')"),
    ("mixed_precision", "yes", None, "journal Sec. V-B text, not its table"),
    ("repeats", 3, None, "journal text: every network trained three times"),
    ("select_on", "test", None, "journal text: the best of the repeats in test-set IoU is reported"),
    ("crop_train_px", 1024, 512, "journal text (2,412 training crops); thesis: 16 crops of 512 per tile"),
    ("crop_test_px", 2048, 2048, "journal text"),
    ("subimage_px", 256, 256, "journal Table 9 (feature-map sizes for 256 x 256 subimages)"),
    ("encoder_weights", "ImageNet", "ImageNet", "journal Sec. V-B: pretrained ResNet blocks, frozen"),
    ("augmentation", AUGMENTATION, AUGMENTATION, "journal Sec. V-B; thesis §7.4.2 (the procedure of §7.3.2)"),
)


def _ours(deepglobe: dict[str, Any]) -> dict[str, object]:
    """The values of one configuration's DeepGlobe section, named like :data:`TABLE6_ROWS`."""
    training = deepglobe["training"]
    weights = deepglobe["weights"]
    return {
        **{key: training[key] for key in ("lr", "max_epochs", "dropout", "batch_size", "lr_patience",
                                          "early_stopping_patience", "min_epochs", "select_on")},
        "loss": f"dice ({training['loss']})",
        "mixed_precision": {True: "yes", False: "no", "auto": "auto (CUDA only)"}[training["amp"]],
        "repeats": len(training["seeds"]),
        "crop_train_px": deepglobe["crop"]["train"],
        "crop_test_px": deepglobe["crop"]["test"],
        "subimage_px": deepglobe["subimage"],
        "encoder_weights": "ImageNet" if any(weights.values())  # a local file (its path is the machine's, left out)
        else "random (no local ImageNet file configured)",
        "augmentation": AUGMENTATION if training["augment"] else "none",
    }


def _table6_note(name: str, journal: object, thesis: object, ours: object, deepglobe: dict[str, Any]) -> str:
    """Why our value differs from the journal's, and where the thesis differs from the journal."""
    training = deepglobe["training"]
    parts = []
    if journal is not None and ours != journal:
        if name == "loss":
            parts.append(f"ran {training['loss']}: {DEFINITIONS[training['loss']]}; journal Eq. (1) is micro. "
                         "Unknown (the ignore index) is never a target, so macro is 6/7 of macro_present when "
                         f"all six land-cover classes are in a batch; DeepGlobe runs trained before {CORRECTED} "
                         "with macro computed macro_present")
        elif name == "mixed_precision" and training["amp"] == "auto":
            parts.append("float16 autocast + GradScaler on CUDA; plain float32 on the CPU")
        elif name == "mixed_precision":
            parts.append("trained in float32 (amp: false)")
        elif name == "select_on":
            parts.append("the repeat is picked on the validation split here; select_on: test reproduces the "
                         "journal's protocol")
        elif name == "augmentation":
            parts.append("trained without the journal's flips and quarter turns (augment: false)")
        elif name == "encoder_weights":
            parts.append("no ImageNet file configured: the frozen ResNet blocks keep random weights")
        else:
            parts.append("reduced from the journal's value in this configuration")
    if name == "early_stopping_patience" and training["min_epochs"] >= training["max_epochs"]:
        parts.append("no early stopping: min_epochs = max_epochs")
    if thesis is not None and journal is not None and thesis != journal:
        parts.append(f"thesis Table 7.10 differs: {thesis}")
    return "; ".join(parts)


def table6(deepglobe: dict[str, Any]) -> pd.DataFrame:
    """Journal Table 6 beside the DeepGlobe hyperparameters of the configuration that ran."""
    ours = _ours(deepglobe)
    rows = [{
        "hyperparameter": name, "value_paper": journal, "value_thesis": thesis, "value_ours": ours[name],
        "paper_source": source, "note": _table6_note(name, journal, thesis, ours[name], deepglobe),
    } for name, journal, thesis, source in TABLE6_ROWS]
    return pd.DataFrame(rows).astype({"value_paper": "object", "value_thesis": "object", "value_ours": "object"})


def deepglobe_scale_note(config: dict[str, Any]) -> str:
    """Every way a configuration's DeepGlobe experiment departs from the journal's, in one sentence."""
    deepglobe = config["deepglobe"]
    ours = _ours(deepglobe)
    parts = [] if deepglobe["root"] else ["GENERATED DeepGlobe-format tiles, NOT DeepGlobe"]
    for name, journal, _thesis, _source in TABLE6_ROWS:
        if name in ("max_epochs", "batch_size", "repeats", "crop_train_px", "crop_test_px", "subimage_px") \
                and ours[name] != journal:
            parts.append(f"{name} {ours[name]} (journal {journal})")
    if not deepglobe["weights"][f"resnet{deepglobe['fig13']['resnet']}"]:
        parts.append("random frozen ResNet blocks (no local ImageNet weights)")
    grid = deepglobe["fig13"]
    if list(grid["partitions"]) != [1, 4, 8, 16] or list(grid["features"]) != [0, 1, 4, 16, 64, 256]:
        parts.append(f"grid P in {{{', '.join(map(str, grid['partitions']))}}} x F in "
                     f"{{{', '.join(map(str, grid['features']))}}} (journal P in {{1, 4, 8, 16}}, "
                     "F in {0, 1, 4, 16, 64, 256})")
    return f"config {config['run']}: " + ("; ".join(parts) if parts else "the journal's protocol")


def _eval_split(record: dict[str, Any]) -> str:
    """The split an evaluation record scored (the last folder of its test data path)."""
    return Path(record["test_data"]).name


def fig13_table(records: list[dict[str, Any]], config: dict[str, Any]) -> pd.DataFrame:
    """Journal Fig. 13 as a table: test mIoU (6 classes) per P, F, C over the repeats, and the selected repeat.

    ``records`` are evaluation JSONs on the test split (and on the ``select_on`` split); P is the training
    crop side over the model's training subimage side. Mean and std (n - 1) are over seeds; the selected
    repeat is the one with the highest mIoU on ``deepglobe.training.select_on``.
    """
    deepglobe = config["deepglobe"]
    crop_train, crop_test = deepglobe["crop"]["train"], deepglobe["crop"]["test"]
    select_on = deepglobe["training"]["select_on"]
    cells: dict[tuple[int, int, str], dict[str, Any]] = {}
    for record in records:
        spec = ModelSpec.parse(record["spec"])
        features, comm = spec.kwargs["features"], "Y" if spec.kwargs["communicate"] else "N"
        subimage = record["subimage_size"][0]
        cell = cells.setdefault((crop_train // subimage, features, comm), {
            "spec": str(spec), "label": spec.label, "subimage": subimage,
            "eval_subimage": record["eval_subimage_size"][0], "miou": {}, "ranks": 1})
        cell["ranks"] = max(cell["ranks"], record.get("train_world_size", 1))
        cell["miou"].setdefault(_eval_split(record), {})[record["seed"]] = record["scores"]["miou"]
    data_source = "DeepGlobe" if deepglobe["root"] else "generated DeepGlobe-format tiles (not DeepGlobe)"
    note = deepglobe_scale_note(config) + "; journal Fig. 13 prints bars only, no numbers to compare"
    rows = []
    for (partition, features, comm), cell in sorted(cells.items()):
        test = cell["miou"].get("test", {})
        chooser = cell["miou"].get(select_on, {})
        if not test or set(chooser) != set(test):
            raise DataError(f"Fig. 13 cell {cell['spec']} at P = {partition} needs test and {select_on} evaluations "
                            f"of the same seeds (have test {sorted(test)}, {select_on} {sorted(chooser)}); "
                            "pass every eval JSON of the grid")
        values = pd.Series([test[seed] for seed in sorted(test)], dtype=float)
        selected = max(sorted(chooser), key=lambda seed: chooser[seed])
        grid = crop_test // cell["eval_subimage"]
        cell_note = note
        if features == 0:
            cell_note += "; F = 0 has no coarse network, so C = Y and C = N are one model (drawn in both panels)"
        if partition == 1:
            cell_note += "; P = 1: trained on whole crops and applied to the whole test crop"
        cell_note += trained_over_note(cell["ranks"])
        rows.append({
            "P": partition, "F": features, "comm": comm, "model": cell["label"], "spec": cell["spec"],
            "subimage_train_px": cell["subimage"], "subimage_test_px": cell["eval_subimage"],
            "test_grid": f"{grid}x{grid}", "repeats": len(values),
            "miou_test_mean_ours": values.mean(), "miou_test_std_ours": values.std(ddof=1),
            "miou_test_min_ours": values.min(), "miou_test_max_ours": values.max(),
            "select_on": select_on, "selected_seed": selected, "miou_test_selected_ours": test[selected],
            "data_source": data_source, "note": cell_note,
        })
    return pd.DataFrame(rows)
