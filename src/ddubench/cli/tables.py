"""Subcommands that build results tables (CSV + provenance sidecar) and figures, and compare with the paper.

Each table has a builder ``(args) -> (frame, sidecar extras)``; `ddubench table NAME` looks it up in
``TABLE_BUILDERS``, so a new table is one function and one entry.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from ..device import resolve_device
from ..errors import DataError, DdubenchError
from ..io import read_record
from ._shared import Commands, set_threads, write_table

TableBuilder = Callable[[argparse.Namespace], tuple[object, dict]]
# what the input records of the tables must hold, and what writes them (for the one-line error of a wrong file)
EVALUATE, EVAL_KEYS = "`ddubench evaluate`", ("spec", "scores")
CEILING, CEILING_KEYS = "`ddubench ceiling`", ("spec", "k", "iou_line_ceiling")


def _records(path: str, producer: str) -> list[dict]:
    """The non-empty ``records`` list of a measurement file written by ``producer``."""
    records = read_record(path, ("records",), producer)["records"]
    if not records:
        raise DataError(f"{path} holds no records; rerun {producer} for it")
    return records


def _require(args: argparse.Namespace, *what: tuple[str, str]) -> None:
    """Stop with one line naming every missing option (dest, what it is) of table ``args.name``."""
    missing = [f"--{dest} ({meaning})" for dest, meaning in what if not getattr(args, dest)]
    if missing:
        raise DdubenchError(f"{args.name} needs {' and '.join(missing)}")


def _analysis_table(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Tables 4 and 5 (from the modules) and Fig. 7 (measured on --device, sweep from --config)."""
    from ..config import load_config
    from ..report import rf_memory

    if args.name == "table4":
        return rf_memory.table4(), {"method": rf_memory.TABLE4_METHOD}
    if args.name == "table5":
        return rf_memory.table5(), {"method": rf_memory.TABLE5_METHOD}
    _require(args, ("config", "the configuration whose fig7.resolutions are measured"))
    set_threads(args.threads)
    sweep = load_config(args.config)["fig7"]
    device = resolve_device(args.device or sweep["device"])
    frame, method = rf_memory.fig7_memory(sweep["resolutions"], device, sweep["max_memory_mb"])
    return frame, {"method": f"measured: {method}; predicted: ddubench.analysis.memory_model",
                   "extra": {"setup": rf_memory.FIG7_SETUP}}


def _deepglobe_table(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Tables 3 (class pixels of --data), 9 (modules), 6 (--config) and Fig. 13 (--evals, --config)."""
    from pathlib import Path

    from ..config import load_config
    from ..io import read_json
    from ..report import deepglobe_tables

    if args.name == "table9":
        return deepglobe_tables.table9(), {"method": "parameters counted on the ddubench ResNet DDU-Net modules "
                                           "(torch numel, BN buffers excluded); feature-map sizes from a shape-only "
                                           "(meta-device) forward pass of one 256x256 subimage"}
    if args.name == "table3":
        _require(args, ("data", "the prepared DeepGlobe folder with manifest.json"))
        return deepglobe_tables.table3(args.data), {"inputs": [str(Path(args.data) / "manifest.json")],
                                                    "extra": {"data": deepglobe_tables.data_record(args.data)}}
    _require(args, ("config", "the run's config"))
    config = load_config(args.config)
    if args.name == "table6":
        return deepglobe_tables.table6(config["deepglobe"]), {}
    _require(args, ("evals", "the Fig. 13 grid's eval JSON files"))
    records = [read_json(path) for path in args.evals]
    return deepglobe_tables.fig13_table(records, config), {
        "inputs": list(args.evals), "method": "mIoU over the six land-cover classes (unknown excluded) from "
                                              "each evaluation's confusion matrix; mean and std (n - 1) over seeds"}


def _baseline_table(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Tables 1 and 2 from the patching/downsampling runs' train.json and eval_<split>.json records."""
    from ..config import load_config
    from ..report import baseline_tables

    _require(args, ("evals", "the train.json and eval_<split>.json records of its runs"), ("config", "the run's config"))
    config = load_config(args.config)
    splits = baseline_tables.needed_splits(config["deepglobe"]["training"]["select_on"])
    frame = baseline_tables.baseline_table(args.name, baseline_tables.read_runs(args.evals, splits), config)
    return frame, {"inputs": list(args.evals), "method": "mIoU over the six land-cover classes (unknown excluded) "
                                                         "from each evaluation record's confusion matrix"}


def _table7(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Table 7 from the measurement JSONs (one per row, named <row>.json) and test evaluations."""
    from pathlib import Path

    from ..config import load_config
    from ..report.table7 import table7

    _require(args, ("config", "its table7.rows"),
             ("evals", "the rows' measurement JSONs, results/<run>/table7/<row>.json"))
    cfg = load_config(args.config)["table7"]
    measured = {Path(path).stem: _records(path, "`ddubench measure table7`") for path in args.evals}
    missing = [row["id"] for row in cfg["rows"] if row["id"] not in measured]
    if missing:
        raise DdubenchError(f"table7: no measurement JSON for rows {', '.join(missing)}; pass "
                            "results/<run>/table7/<row>.json for every row of the config")
    scores = [read_record(path, EVAL_KEYS, EVALUATE) for path in args.scores or []]
    first = next(iter(measured.values()))[0]
    setting = (f"ours: random weights, batch 1, {cfg['resolution']}x{cfg['resolution']} image, inference mode, "
               f"{cfg['threads']} torch threads per device on {first['device']}, mean and std of {cfg['repeats']} "
               f"passes after {cfg['warmup']} warm-up; paper: V100S GPUs (CUDA allocator)")
    frame = table7(cfg["rows"], measured, scores, cfg["miou_reason"], setting)
    return frame, {"inputs": list(args.evals) + list(args.scores or []), "method": first["memory_method"]}


def _table8(args: argparse.Namespace) -> tuple[object, dict]:  # noqa: ARG001
    """Journal Table 8: parameter counts of the synthetic models, from the modules."""
    from ..report import tables

    return tables.table8(), {"method": "parameters counted on the ddubench modules (torch numel, BN buffers excluded)"}


def _table10(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Table 10: the hyperparameters of --config."""
    from ..config import load_config
    from ..report import tables

    _require(args, ("config", "the configuration whose hyperparameters are reported"))
    return tables.table10(load_config(args.config)), {}


def _protocol(args: argparse.Namespace) -> tuple[object, dict]:
    """The protocol study from its models' test and validation evaluations (and ceilings)."""
    from ..config import load_config
    from ..report.protocol import protocol_table

    _require(args, ("evals", "every study model's eval_k<k>.json and eval_val.json"),
             ("config", "the run's config with its protocol_study section"))
    ceilings = {str(path): read_record(path, CEILING_KEYS, CEILING)["iou_line_ceiling"] for path in args.ceilings or []}
    frame = protocol_table(load_config(args.config), {str(path): read_record(path, EVAL_KEYS, EVALUATE)
                                                      for path in args.evals}, ceilings)
    return frame, {"inputs": list(args.evals) + list(args.ceilings or []),
                   "method": "line IoU from one confusion matrix per split (test, val), per-image mean on test, and "
                             "per distance bin between the circle centres"}


def _throughput(args: argparse.Namespace) -> tuple[object, dict]:
    """Training-step time per model from `ddubench measure step-time` records."""
    from ..io import read_json
    from ..report.throughput import throughput_table

    _require(args, ("evals", "the JSON files written by `ddubench measure step-time`"))
    frame = throughput_table([read_json(path) for path in args.evals])
    return frame, {"inputs": list(args.evals), "method": "time.perf_counter around one training step"}


def _scaling(args: argparse.Namespace) -> tuple[object, dict]:
    """Per-rank memory and time over rank counts from `ddubench scaling` records."""
    from ..report.scaling import scaling_table

    _require(args, ("evals", "the JSON files written by `ddubench scaling`"))
    records = [r for path in args.evals for r in _records(path, "`ddubench scaling`")]
    return scaling_table(records), {"inputs": list(args.evals), "method": records[0]["memory_method"]}


def _synthetic_grid(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Figs. 9 and 11 (line IoU per model and k, with ceilings) and Fig. 10 (depths) from evaluations."""
    from ..config import cell_seeds, load_config
    from ..report import paper, tables

    _require(args, ("evals", "the evaluation JSON files"), ("config", "the run's config"))
    records = [read_record(path, EVAL_KEYS, EVALUATE) for path in args.evals]
    config = load_config(args.config)
    note = tables.scale_note(config)
    if args.name == "fig10":
        frame = tables.depth_table(records, note, planned_seeds=lambda k: len(cell_seeds(config, k)))
    else:
        reference = paper.FIG9_LINE_IOU if args.name == "fig9" else paper.FIG11_LINE_IOU
        ceilings = {(c["spec"], c["k"]): c["iou_line_ceiling"]
                    for c in (read_record(path, CEILING_KEYS, CEILING) for path in args.ceilings or [])}
        frame = tables.line_iou_grid(records, reference, depth=paper.FIG9_DEPTH, note=note, ceilings=ceilings,
                                     planned_seeds=lambda k: len(cell_seeds(config, k)),
                                     paper_test_k=paper.FIG11_TEST_K if args.name == "fig11" else None)
    return frame, {"inputs": list(args.evals) + list(args.ceilings or [])}


def _budgets(args: argparse.Namespace) -> tuple[object, dict]:
    """Journal Fig. 9 of several runs (budgets, protocols) side by side, from their fig9_heatmap.csv tables."""
    from ..report.budgets import budget_table

    _require(args, ("grids", "run=path pairs of the runs' fig9_heatmap.csv"))
    grids = {}
    for pair in args.grids:
        run, sep, path = pair.partition("=")
        if not sep or not run or not path:
            raise DdubenchError(f"--grids {pair}: give run=path, e.g. cpu=results/cpu/fig9_heatmap.csv")
        if run in grids:
            raise DdubenchError(f"--grids: run {run} is given twice ({grids[run]} and {path}); name each run once")
        grids[run] = path
    return budget_table(grids), {"inputs": list(grids.values()),
                                 "method": "each run's fig9_heatmap.csv, cell by cell beside the journal's Fig. 9"}


def _thesis_exact(args: argparse.Namespace) -> tuple[object, dict]:
    """Thesis Tables 6.4, 6.5, 7.5 and 7.6: from the modules and the memory model, no data or training (Table
    7.5's measured per-rank peaks from `measure step-time --distributed` records given with --evals)."""
    from ..io import read_json
    from ..report.thesis_tables import THESIS_TABLES, table7_5_peaks

    builder, method = THESIS_TABLES[args.name]
    if args.name == "thesis_table7_5" and args.evals:
        return builder(table7_5_peaks([read_json(path) for path in args.evals])), {
            "method": method, "inputs": list(args.evals)}
    if args.evals:
        raise DdubenchError(f"{args.name} is built from the modules alone; drop --evals")
    return builder(), {"method": method}


def _thesis_positional(args: argparse.Namespace) -> tuple[object, dict]:
    """Thesis Tables 6.2 and 6.3: the positional-encoding probe per padding, from its records."""
    from ..io import read_json
    from ..report import thesis_positional

    _require(args, ("evals", "the JSON files written by `ddubench positional-encoding`, one per padding"))
    frame = getattr(thesis_positional, args.name)([read_json(path) for path in args.evals])
    return frame, {"inputs": list(args.evals), "method": "validation MSE of the last epoch's probe per padding "
                   "(ddubench.training.positional); references computed from the data's geometry"}


def _thesis_synthetic(args: argparse.Namespace) -> tuple[object, dict]:
    """Thesis Table 7.4 and the numbers of Figs. 7.6 and 7.8: the models of the run's thesis experiments
    (the derived run <run>-thesis) from their evaluation records."""
    from ..config import derived_config, load_config
    from ..report import paper, thesis_synthetic
    from ..report.tables import scale_note

    _require(args, ("evals", f"the evaluation JSONs of the {args.name} models"),
             ("config", "the run's config with its thesis.synthetic section"))
    thesis_run = derived_config(load_config(args.config), "thesis", args.config)
    note = scale_note(thesis_run, paper.THESIS_SYNTHETIC_COUNTS, "thesis")
    if args.name == "thesis_fig7_6":
        note += "; F in " + ", ".join(map(str, thesis_run["thesis"]["synthetic"]["fig7_6"]["features"])) + \
            " up to 4 x 2^D (thesis: every power of two)"
    if args.name == "thesis_fig7_8" and thesis_run["thesis"]["synthetic"]["fig7_8"].get("reduced_reason"):
        section = thesis_run["thesis"]["synthetic"]["fig7_8"]
        note += f"; trained on k in {', '.join(map(str, section['ks']))} only ({section['reduced_reason']})"
    frame = getattr(thesis_synthetic, args.name)([read_record(path, EVAL_KEYS, EVALUATE) for path in args.evals],
                                                  note)
    return frame, {"inputs": list(args.evals), "method": "scores from one confusion matrix over the test split per "
                   "model and evaluation"}


def _thesis_memory(args: argparse.Namespace) -> tuple[object, dict]:
    """Thesis Figs. 6.8/6.9 (from `ddubench memory-timeline` records) and 6.10 (measured here, with the theory)."""
    from ..io import read_json
    from ..report import thesis_memory

    if args.name == "thesis_fig6_8":
        _require(args, ("evals", "the JSON files written by `ddubench memory-timeline`"))
        files = [read_json(path) for path in args.evals]
        return thesis_memory.thesis_fig6_8_table(files), {
            "inputs": list(args.evals), "method": files[0]["provenance"]["method"]}
    from ..config import load_config

    _require(args, ("config", "the run's config with its thesis.memory section"))
    section = load_config(args.config).get("thesis", {}).get("memory")
    if section is None:
        raise DdubenchError(f"{args.config} has no thesis.memory section; add one (see config/cpu.yaml)")
    set_threads(args.threads)
    device = resolve_device(args.device or section["device"])
    return thesis_memory.thesis_fig6_10(section["ddunet"], section["peak_resolutions"], device), {
        "method": "theory: ddubench.analysis.memory_model training_bytes; measured: peak of one training step"}


def _thesis_deepglobe(args: argparse.Namespace) -> tuple[object, dict]:
    """Thesis Tables 7.11-7.13: the DeepGlobe bottleneck-convolution ablation from its evaluation records."""
    from ..config import derived_config, load_config
    from ..io import read_json
    from ..report import thesis_deepglobe

    _require(args, ("evals", "the ablation models' eval JSONs (train, val and test)"),
             ("config", "the run's config with its thesis.deepglobe_ablation section"))
    thesis_run = derived_config(load_config(args.config), "thesis", args.config)
    records = [read_json(path) for path in args.evals]
    crop, note = thesis_run["deepglobe"]["crop"]["train"], thesis_deepglobe.ablation_note(thesis_run)
    if args.name == "thesis_table7_13":
        frame = thesis_deepglobe.thesis_table7_13(records, crop, note)
    else:
        frame = thesis_deepglobe.thesis_per_class(records, crop, "with" if args.name == "thesis_table7_12"
                                                  else "without", note)
    return frame, {"inputs": list(args.evals), "method": "IoU from one confusion matrix per split ('unknown' "
                   "ignored), mean over seeds"}


def _thesis_inria(args: argparse.Namespace) -> tuple[object, dict]:
    """Thesis Tables 7.7 (the Inria training settings) and 7.8 (IoU of background and building from the models'
    evaluation records)."""
    from ..config import load_config
    from ..io import read_json
    from ..report import thesis_inria

    _require(args, ("config", "the run's config with its thesis.inria section"))
    config = load_config(args.config)
    if "inria" not in config.get("thesis", {}):
        raise DdubenchError(f"{args.config} has no thesis.inria section; add one (see config/cpu.yaml)")
    if args.name == "thesis_table7_7":
        return thesis_inria.thesis_table7_7(config), {"method": "thesis Table 7.7 beside thesis.inria.training"}
    _require(args, ("evals", "the Inria models' eval JSONs (train, val and test)"))
    records = [read_json(path) for path in args.evals]
    return thesis_inria.thesis_table7_8(records, config), {
        "inputs": list(args.evals), "method": "IoU from one confusion matrix per split, mean over seeds"}


THESIS_EXACT_TABLES = ("thesis_table6_4", "thesis_table6_5", "thesis_table7_5", "thesis_table7_6")
TABLE_BUILDERS: dict[str, TableBuilder] = {
    "table1": _baseline_table, "table2": _baseline_table, "table3": _deepglobe_table, "table4": _analysis_table,
    "table5": _analysis_table, "table6": _deepglobe_table, "table7": _table7, "table8": _table8,
    "table9": _deepglobe_table, "table10": _table10, "fig7": _analysis_table, "fig9": _synthetic_grid,
    "fig10": _synthetic_grid, "fig11": _synthetic_grid, "fig9_budgets": _budgets, "fig13": _deepglobe_table,
    "protocol": _protocol, "scaling": _scaling, "throughput": _throughput,
    **dict.fromkeys(THESIS_EXACT_TABLES, _thesis_exact),
    "thesis_table6_2": _thesis_positional, "thesis_table6_3": _thesis_positional,
    **dict.fromkeys(("thesis_table7_4", "thesis_fig7_6", "thesis_fig7_8"), _thesis_synthetic),
    "thesis_fig6_8": _thesis_memory, "thesis_fig6_10": _thesis_memory,
    **dict.fromkeys(("thesis_table7_11", "thesis_table7_12", "thesis_table7_13"), _thesis_deepglobe),
    "thesis_table7_7": _thesis_inria, "thesis_table7_8": _thesis_inria,
}


def cmd_table(args: argparse.Namespace) -> None:
    from ..provenance import utc_now

    started, clock = utc_now(), time.perf_counter()
    frame, extra = TABLE_BUILDERS[args.name](args)
    write_table(frame, args.out, args.config, started, clock, **extra)


# figures drawn from the files given with --evals: name -> (module of ddubench.report, drawing function(records or
# paths, out), whether it takes the files' paths instead of their JSON)
RECORD_FIGURES = {
    "thesis_fig6_4": ("thesis_positional", "thesis_fig6_4", False),
    "thesis_fig7_3": ("thesis_synthetic", "thesis_fig7_3", True),
    "thesis_fig7_4": ("thesis_synthetic", "thesis_fig7_4", False),
    "thesis_fig6_8": ("thesis_memory", "thesis_fig6_8", False),
    "thesis_fig6_9": ("thesis_memory", "thesis_fig6_9", False),
}
MODULE_FIGURES = ("thesis_fig6_5",)  # from the modules alone (ddubench.report.thesis_positional)
# figure name -> (module of ddubench.report, drawing function(csv, out)); fig9/fig11 are the heatmaps below
FIGURE_DRAWERS = {
    "fig7": ("rf_memory", "fig7_figure"),
    "scaling": ("scaling", "scaling_figure"),
    "protocol": ("protocol", "protocol_bars"),
    "protocol_distance": ("protocol", "protocol_distance"),
    "fig9_budgets": ("budgets", "budget_figure"),
    "fig13": ("deepglobe_figures", "fig13_figure"),
    "thesis_fig7_6": ("thesis_synthetic", "thesis_fig7_6_figure"),
    "thesis_fig7_8": ("thesis_synthetic", "thesis_fig7_8_figure"),
    "thesis_fig6_10": ("thesis_memory", "thesis_fig6_10_figure"),
}
HEATMAP_TITLES = {
    "fig9": ("Journal Fig. 9: line-class IoU, trained and tested on k subimages", "k (subimages)"),
    "fig11": ("Journal Fig. 11: line-class IoU on the 6-subimage test set", "k trained on"),
}


def cmd_figure(args: argparse.Namespace) -> None:
    import importlib

    from ..report.figures import line_iou_heatmaps

    if args.name in RECORD_FIGURES:
        from ..io import read_json

        if not args.evals:
            raise DdubenchError(f"figure {args.name} is drawn from records: give them with --evals")
        module, function, takes_paths = RECORD_FIGURES[args.name]
        inputs = list(args.evals) if takes_paths else [read_json(path) for path in args.evals]
        getattr(importlib.import_module(f"ddubench.report.{module}"), function)(inputs, args.out)
    elif args.name in MODULE_FIGURES:
        from ..report import thesis_positional

        getattr(thesis_positional, args.name)(args.out)
    elif not args.csv:
        raise DdubenchError(f"figure {args.name} is drawn from its results table: give it with --csv")
    elif args.name in FIGURE_DRAWERS:
        module, function = FIGURE_DRAWERS[args.name]
        getattr(importlib.import_module(f"ddubench.report.{module}"), function)(args.csv, args.out)
    else:
        line_iou_heatmaps(args.csv, args.out, *HEATMAP_TITLES[args.name])
    print(f"wrote {args.out}")


def cmd_compare(args: argparse.Namespace) -> None:
    from ..report.compare import markdown

    for csv in args.csvs:
        print(markdown(csv))
        print()


def register(commands: Commands) -> None:
    """table, figure, compare."""
    p = commands.add("table", cmd_table, "Build a results table CSV (+ .meta.json provenance sidecar).",
                     outputs=("out",))
    p.add_argument("name", choices=sorted(TABLE_BUILDERS, key=lambda name: (name.rstrip("0123456789"), len(name), name)),
                   help="which table: journal table<N>, fig<N> data, thesis_table<chapter>_<N>, or one of ours "
                        "(scaling, throughput, protocol)")
    p.add_argument("--data", help="prepared DeepGlobe folder with manifest.json (table3)")
    p.add_argument("--out", required=True, help="CSV to write (the sidecar goes beside it)")
    p.add_argument("--config", help="configuration file the table belongs to (recorded in the sidecar)")
    p.add_argument("--evals", nargs="*", help="evaluation JSON files (fig9, fig10, fig11; table1/table2: "
                   "train.json, eval_train.json, eval_test.json of every run)")
    p.add_argument("--scores", nargs="*", help="table7: test evaluation JSONs of the rows' trained models")
    p.add_argument("--ceilings", nargs="*", help="fig9, fig11, protocol: receptive-field ceiling JSONs (`ddubench "
                   "ceiling`) of the models' classes on their test data (column iou_line_ceiling)")
    p.add_argument("--grids", nargs="*", metavar="RUN=CSV", help="fig9_budgets: the Fig. 9 tables to set side by "
                   "side, e.g. cpu=results/cpu/fig9_heatmap.csv paper=results/paper/fig9_heatmap.csv")
    p.add_argument("--threads", type=int, default=None, help="torch threads for measurements (fig7)")
    p.add_argument("--device", help="device fig7 measures (cpu, cuda, cuda:N, auto; default: the config's fig7.device)")

    p = commands.add("figure", cmd_figure, "Draw a figure PDF from its results CSV (thesis Fig. 6.4: from records; "
                     "Fig. 6.5: from the modules).", outputs=("out",))
    p.add_argument("name", choices=[*HEATMAP_TITLES, *FIGURE_DRAWERS, *RECORD_FIGURES, *MODULE_FIGURES],
                   help="which figure")
    p.add_argument("--csv", help="results CSV the figure is drawn from (every figure but the thesis ones)")
    p.add_argument("--evals", nargs="*", help="thesis_fig6_4: the `ddubench positional-encoding` records; "
                   "thesis_fig7_3: the models' train.json (history.csv beside each); thesis_fig7_4: their eval JSONs")
    p.add_argument("--out", required=True, help="figure PDF to write")

    p = commands.add("compare", cmd_compare, "Compare a Fig. 9/11 results CSV with the paper (Markdown summary).")
    p.add_argument("csvs", nargs="+", help="e.g. results/fig9_heatmap.csv results/fig11_generalization.csv")
