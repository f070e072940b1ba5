"""Journal Table 3 (DeepGlobe class pixel counts) from prepared data and Table 9 (ResNet DDU-Net modules)."""

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
from ..models import CoarseNetwork, build_model
from . import paper

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
