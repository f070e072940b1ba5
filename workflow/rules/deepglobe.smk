"""DeepGlobe Land Cover (journal Sec. V-B): tiles, split and crops, journal Tables 3 and 9; training and
evaluation of any model on the crops; journal Table 6, Fig. 13, Figs. 14/15 and the examples of Figs. 5/6.

`deepglobe.root` names the user's DeepGlobe folder; `root: null` generates DeepGlobe-format fake tiles
instead (NOT DeepGlobe; Table 3's note says so). Generated tiles and their preparation are `temp`, like the
synthetic datasets, so a committed table never forces them to be rebuilt; the preparation of a user's
DeepGlobe folder is kept, so it is cut once and reused.
"""


def deepglobe_dir(run):
    """Where the prepared (split, cropped, class-id) DeepGlobe data of a run lives; a derived run <run>-<name>
    uses its base run's (derived runs change training settings, never the DeepGlobe data)."""
    return f"data/{run.split('-', 1)[0]}/deepglobe"


def deepglobe_fake_dir(run):
    """Where the generated DeepGlobe-format tiles of a run (or of a derived run's base) live."""
    return f"data/{run.split('-', 1)[0]}/deepglobe_fake"


def deepglobe_root(wildcards):
    """The tile folder: the configured root (a missing one stops the run with one line) or the generated tiles."""
    root = run_config(wildcards.run)["deepglobe"]["root"]
    if root is None:
        return deepglobe_fake_dir(wildcards.run)
    if not os.path.isdir(root):
        _fail(f"{config_file(wildcards.run)}: deepglobe.root {root} does not exist; put the Kaggle DeepGlobe "
              "Land Cover data there (train/<id>_sat.jpg and <id>_mask.png) or set root: null for generated tiles")
    return root


def deepglobe_tiles(wildcards):
    """Input of the preparation: the generated tiles when no root is configured (a given root is checked instead)."""
    root = deepglobe_root(wildcards)
    return [root] if run_config(wildcards.run)["deepglobe"]["root"] is None else []


def deepglobe_args(wildcards):
    """Split and crop settings of a run as `ddubench deepglobe-prepare` flags."""
    cfg = run_config(wildcards.run)["deepglobe"]
    split, crop = cfg["split"], cfg["crop"]
    return (
        f"--train {split['train']} --val {split['val']} --test {split['test']} --split-seed {split['seed']} "
        f"--crop-train {crop['train']} --crop-test {crop['test']} --subimage {cfg['subimage']}"
    )


def deepglobe_output(path):
    """Prepared data from generated tiles is temporary; a user's DeepGlobe preparation is kept."""
    return temp(path) if config["deepglobe"]["root"] is None else path


rule deepglobe_fake:
    output:
        temp(directory("data/{run}/deepglobe_fake")),
    params:
        fake=lambda wildcards: run_config(wildcards.run)["deepglobe"]["fake"],
    log:
        "logs/{run}/deepglobe_fake.log",
    shell:
        "{DDUBENCH} deepglobe-fake --out {output} --images {params.fake[images]} --size {params.fake[size]}"
        " --seed {params.fake[seed]} > {log} 2>&1"


rule deepglobe_prepare:
    input:
        deepglobe_tiles,
    output:
        manifest=deepglobe_output("data/{run}/deepglobe/manifest.json"),
        split=deepglobe_output("data/{run}/deepglobe/split.json"),
        arrays=[deepglobe_output(f"data/{{run}}/deepglobe/{split}/{name}.npy")
                for split in ("train", "val", "test") for name in ("images", "masks")],
    params:
        root=deepglobe_root,
        args=deepglobe_args,
        out=lambda wildcards: deepglobe_dir(wildcards.run),
    log:
        "logs/{run}/deepglobe_prepare.log",
    shell:
        "{DDUBENCH} deepglobe-prepare --root {params.root:q} --out {params.out} {params.args} --no-progress"
        " > {log} 2>&1"


rule table3:
    input:
        "data/{run}/deepglobe/manifest.json",
    output:
        report_table("results/{run}/table3.csv"),
        "results/{run}/table3.meta.json",
    params:
        config=run_config_file,
        data=lambda wildcards: deepglobe_dir(wildcards.run),
    log:
        "logs/{run}/table3.log",
    shell:
        "{DDUBENCH} table table3 --config {params.config} --data {params.data} --out {output[0]} > {log} 2>&1"


rule table9:
    output:
        report_table("results/{run}/table9.csv"),
        "results/{run}/table9.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table9.log",
    shell:
        "{DDUBENCH} table table9 --config {params.config} --out {output[0]} > {log} 2>&1"


# ------------------------------------------------------------------------------- training and evaluation
# Any model spec is trained on the prepared crops with the `deepglobe.training` hyperparameters (journal
# Table 6; not the synthetic `training` section) and evaluated on a split:
#   results/{run}/deepglobe/runs/{spec}/seed{seed}/train.json            (+ temporary best.pt)
#   results/{run}/deepglobe/runs/{spec}/seed{seed}/eval_{split}.json     split: train, val or test
# A subimage side other than the preparation's (journal Fig. 13 trains P x P subimages of a crop) lives in
#   results/{run}/deepglobe/runs/{spec}/S{subimage}/seed{seed}/...
# and eval_{split}_S{n}.json applies a model to n x n subimages of the split (n = crop side: the whole crop).

DEEPGLOBE_TRAIN_FLAGS = ("lr", "max_epochs", "min_epochs", "early_stopping_patience", "lr_patience", "lr_factor",
                         "batch_size", "eval_batch_size", "dropout", "loss")
AMP_FLAG = {"auto": "auto", True: "on", False: "off"}


def deepglobe_run_dir(run, spec, seed, subimage=None):
    """Where one DeepGlobe model's files live (``subimage``: a training subimage side other than the data's)."""
    return f"results/{run}/deepglobe/runs/{spec}{f'/S{subimage}' if subimage else ''}/seed{seed}"


def deepglobe_weights(run, spec):
    """The configured local ImageNet file for a spec's ResNet encoder, if any."""
    resnet = ModelSpec.parse(spec).kwargs.get("resnet")
    return run_config(run)["deepglobe"]["weights"].get(f"resnet{resnet}") if resnet else None


def deepglobe_train_ranks(wildcards):
    """Ranks a DeepGlobe training job runs over: its model's setting, capped by its (crop / side)^2 subimages."""
    deepglobe = run_config(wildcards.run)["deepglobe"]
    side = int(getattr(wildcards, "subimage", None) or deepglobe["subimage"])
    subimages = (deepglobe["crop"]["train"] // side) ** 2
    return model_ranks(deepglobe["training"], wildcards.spec, subimages)


def deepglobe_launch(wildcards):
    device = run_config(wildcards.run)["deepglobe"]["training"]["device"]
    return Launch(wildcards.run, deepglobe_train_ranks(wildcards), device)


def deepglobe_launcher(wildcards):
    """`ddubench` for a one-process training job, torchrun + `-m ddubench` for a multi-rank one."""
    launch = deepglobe_launch(wildcards)
    return DDUBENCH if launch.ranks == 1 else f"{launch.torchrun()} -m ddubench"


def deepglobe_device(wildcards):
    return run_config(wildcards.run)["deepglobe"]["training"]["device"]


def deepglobe_training_args(wildcards):
    """`deepglobe.training` (and the encoder weights) of a run as `ddubench train` flags."""
    training = run_config(wildcards.run)["deepglobe"]["training"]
    flags = [f"--{key.replace('_', '-')} {training[key]}" for key in DEEPGLOBE_TRAIN_FLAGS]
    flags += [f"--amp {AMP_FLAG[training['amp']]}", f"--device {training['device']}"]
    if training["augment"]:
        flags.append("--augment")
    if deepglobe_train_ranks(wildcards) > 1:
        flags.append("--distributed")
    weights = deepglobe_weights(wildcards.run, wildcards.spec)
    if weights:
        flags.append(f"--weights '{weights}'")
    return " ".join(flags)


def deepglobe_eval_args(wildcards):
    """Batch size and device of an evaluation job."""
    training = run_config(wildcards.run)["deepglobe"]["training"]
    return f"--batch-size {training['eval_batch_size']} --device {training['device']}"


def deepglobe_split_inputs(*splits):
    """Input function: the manifest and the prepared arrays of ``splits`` (none given: the ``split`` wildcard)."""

    def inputs(wildcards):
        names = splits or (wildcards.split,)
        return [f"{deepglobe_dir(wildcards.run)}/manifest.json"] + [
            f"{deepglobe_dir(wildcards.run)}/{split}/{name}.npy" for split in names for name in ("images", "masks")]

    return inputs


DEEPGLOBE_TRAIN_SHELL = (
    "{params.launcher} train --model {wildcards.spec} --data {params.data} --run-dir {params.run_dir}"
    " --summary {output.summary} {params.hyper} --seed {wildcards.seed} {params.subimage} --threads 1"
    " --no-progress > {log} 2>&1"
)
DEEPGLOBE_EVAL_SHELL = (
    "{DDUBENCH} evaluate --checkpoint {input.checkpoint} --data {params.data} --out {output} {params.args}"
    " {params.subimage} --threads {threads} --no-progress > {log} 2>&1"
)


rule deepglobe_train:
    input:
        deepglobe_split_inputs("train", "val"),
    output:
        summary="results/{run}/deepglobe/runs/{spec}/seed{seed}/train.json",
        checkpoint=temp("results/{run}/deepglobe/runs/{spec}/seed{seed}/best.pt"),
    params:
        launcher=deepglobe_launcher,
        hyper=deepglobe_training_args,
        data=lambda wildcards: deepglobe_dir(wildcards.run),
        run_dir=lambda wildcards: deepglobe_run_dir(wildcards.run, wildcards.spec, wildcards.seed),
        subimage="",
    threads: lambda wildcards: deepglobe_train_ranks(wildcards)  # one torch thread per rank
    resources:
        **launch_resources(deepglobe_launch),
    log:
        "logs/{run}/deepglobe/train/{spec}_seed{seed}.log",
    shell:
        DEEPGLOBE_TRAIN_SHELL


rule deepglobe_train_subimage:
    input:
        deepglobe_split_inputs("train", "val"),
    output:
        summary="results/{run}/deepglobe/runs/{spec}/S{subimage}/seed{seed}/train.json",
        checkpoint=temp("results/{run}/deepglobe/runs/{spec}/S{subimage}/seed{seed}/best.pt"),
    wildcard_constraints:
        subimage=r"\d+",
    params:
        launcher=deepglobe_launcher,
        hyper=deepglobe_training_args,
        data=lambda wildcards: deepglobe_dir(wildcards.run),
        run_dir=lambda wildcards: deepglobe_run_dir(wildcards.run, wildcards.spec, wildcards.seed, wildcards.subimage),
        subimage=lambda wildcards: f"--subimage {wildcards.subimage}",
    threads: lambda wildcards: deepglobe_train_ranks(wildcards)  # one torch thread per rank
    resources:
        **launch_resources(deepglobe_launch),
    log:
        "logs/{run}/deepglobe/train/{spec}_S{subimage}_seed{seed}.log",
    shell:
        DEEPGLOBE_TRAIN_SHELL


rule deepglobe_evaluate:
    input:
        deepglobe_split_inputs(),
        checkpoint="results/{run}/deepglobe/runs/{model}/seed{seed}/best.pt",
    output:
        "results/{run}/deepglobe/runs/{model}/seed{seed}/eval_{split}.json",
    wildcard_constraints:
        model=r"[a-z]+(_[A-Z][A-Za-z0-9]+)*(/S\d+)?",
        split="train|val|test",
    params:
        data=lambda wildcards: f"{deepglobe_dir(wildcards.run)}/{wildcards.split}",
        args=deepglobe_eval_args,
        subimage="",
    threads: 1
    resources:
        **gpu_resources(deepglobe_device),
    log:
        "logs/{run}/deepglobe/evaluate/{model}_seed{seed}_{split}.log",
    shell:
        DEEPGLOBE_EVAL_SHELL


rule deepglobe_evaluate_subimage:
    input:
        deepglobe_split_inputs(),
        checkpoint="results/{run}/deepglobe/runs/{model}/seed{seed}/best.pt",
    output:
        "results/{run}/deepglobe/runs/{model}/seed{seed}/eval_{split}_S{eval_subimage}.json",
    wildcard_constraints:
        model=r"[a-z]+(_[A-Z][A-Za-z0-9]+)*(/S\d+)?",
        split="train|val|test",
        eval_subimage=r"\d+",
    params:
        data=lambda wildcards: f"{deepglobe_dir(wildcards.run)}/{wildcards.split}",
        args=deepglobe_eval_args,
        subimage=lambda wildcards: f"--subimage {wildcards.eval_subimage}",
    threads: 1
    resources:
        **gpu_resources(deepglobe_device),
    log:
        "logs/{run}/deepglobe/evaluate/{model}_seed{seed}_{split}_S{eval_subimage}.log",
    shell:
        DEEPGLOBE_EVAL_SHELL


rule table6:
    output:
        report_table("results/{run}/table6.csv"),
        "results/{run}/table6.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table6.log",
    shell:
        "{DDUBENCH} table table6 --config {params.config} --out {output[0]} > {log} 2>&1"


# ---------------------------------------------------------------------------------- Fig. 13, Figs. 14/15
# Fig. 13: DDU-Net(4, F, C) trained on P x P subimages of the training crops (side crop.train / P) and tested
# on the test crops with the same subimage side; P = 1 is trained on whole crops and applied to the whole
# test crop. F = 0 has no coarse network, so only C = N is trained; P = 1 has one subimage, so only C = N.


def fig13_cells(run):
    """(P, spec) of every Fig. 13 model; a partition that does not fit the crops stops the run."""
    deepglobe = run_config(run)["deepglobe"]
    grid, crop = deepglobe["fig13"], deepglobe["crop"]["train"]
    cells = []
    for partition in grid["partitions"]:
        if crop % partition or (crop // partition) % 16:
            _fail(f"{config_file(run)}: deepglobe.fig13.partitions has P = {partition}, but the {crop} px training "
                  "crop does not split into P x P subimages whose side is a multiple of 16; change P or crop.train")
        for features in grid["features"]:
            for comm in ("N",) if partition == 1 or features == 0 else ("N", "Y"):
                cells.append((partition, canonical(f"resnetddunet_R{grid['resnet']}_F{features}_C{comm}")))
    return cells


def fig13_model_dir(run, partition, spec, seed):
    """The run directory of a Fig. 13 model (the preparation's own subimage side needs no override)."""
    deepglobe = run_config(run)["deepglobe"]
    side = deepglobe["crop"]["train"] // partition
    return deepglobe_run_dir(run, spec, seed, None if side == deepglobe["subimage"] else side)


def fig13_eval(run, partition, spec, seed, split):
    """A Fig. 13 model's evaluation on ``split``: at its own subimage side, or on whole crops for P = 1."""
    whole = f"_S{run_config(run)['deepglobe']['crop']['test']}" if partition == 1 else ""
    return f"{fig13_model_dir(run, partition, spec, seed)}/eval_{split}{whole}.json"


def fig13_evals(wildcards):
    """Test evaluations of the grid, plus those on the split that selects the reported repeat."""
    training = run_config(wildcards.run)["deepglobe"]["training"]
    splits = sorted({"test", training["select_on"]})
    return [fig13_eval(wildcards.run, partition, spec, seed, split)
            for partition, spec in fig13_cells(wildcards.run) for seed in training["seeds"] for split in splits]


def fig14_panels(run):
    """(checkpoint, subimage choice) of journal Fig. 14: (4, F, N) whole, (4, F, Y) and (4, F, N) on P x P."""
    deepglobe = run_config(run)["deepglobe"]
    shown, seed = deepglobe["predictions"], deepglobe["training"]["seeds"][0]
    no, yes = (canonical(f"resnetddunet_R{deepglobe['fig13']['resnet']}_F{shown['features']}_C{comm}")
               for comm in ("N", "Y"))
    return [(f"{fig13_model_dir(run, 1, no, seed)}/best.pt", "whole"),
            (f"{fig13_model_dir(run, shown['partition'], yes, seed)}/best.pt", "own"),
            (f"{fig13_model_dir(run, shown['partition'], no, seed)}/best.pt", "own")]


rule fig13_table:
    input:
        fig13_evals,
    output:
        report_table("results/{run}/fig13_deepglobe.csv"),
        "results/{run}/fig13_deepglobe.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/fig13_table.log",
    shell:
        "{DDUBENCH} table fig13 --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule fig13_figure:
    input:
        "results/{run}/fig13_deepglobe.csv",
    output:
        report_figure("figures/{run}/fig13_deepglobe.pdf"),
    log:
        "logs/{run}/fig13_figure.log",
    shell:
        "{DDUBENCH} figure fig13 --csv {input} --out {output} > {log} 2>&1"


rule deepglobe_predictions:
    input:
        deepglobe_split_inputs("test"),
        checkpoints=lambda wildcards: [checkpoint for checkpoint, _ in fig14_panels(wildcards.run)],
    output:
        pdf14=report_figure("figures/{run}/fig14_predictions.pdf"),
        csv14=report_table("results/{run}/fig14_predictions.csv"),
        meta14="results/{run}/fig14_predictions.meta.json",
        pdf15=report_figure("figures/{run}/fig15_errors.pdf"),
        csv15=report_table("results/{run}/fig15_errors.csv"),
        meta15="results/{run}/fig15_errors.meta.json",
    params:
        subimages=lambda wildcards: " ".join(choice for _, choice in fig14_panels(wildcards.run)),
        data=lambda wildcards: f"{deepglobe_dir(wildcards.run)}/test",
        examples=lambda wildcards: run_config(wildcards.run)["deepglobe"]["predictions"]["examples"],
        device=lambda wildcards: run_config(wildcards.run)["deepglobe"]["training"]["device"],
    threads: 1
    resources:
        **gpu_resources(deepglobe_device),
    log:
        "logs/{run}/deepglobe_predictions.log",
    shell:
        "{DDUBENCH} deepglobe-predictions --checkpoints {input.checkpoints} --subimages {params.subimages}"
        " --data {params.data} --examples {params.examples} --pdf14 {output.pdf14} --csv14 {output.csv14}"
        " --pdf15 {output.pdf15} --csv15 {output.csv15} --device {params.device} --threads {threads}"
        " --no-progress > {log} 2>&1"


# ------------------------------------------------------------------------------------------- Figs. 5/6
FIG5_K = 4  # journal Fig. 5: 4 subimages of 32 x 32


rule fig5_examples:
    input:
        data=f"data/{{run}}/synthetic/k{FIG5_K}/test.npz",
        manifest=f"data/{{run}}/synthetic/k{FIG5_K}/manifest.json",
    output:
        pdf=report_figure("figures/{run}/fig5_synthetic_examples.pdf"),
        csv=report_table("results/{run}/fig5_synthetic_examples.csv"),
        meta="results/{run}/fig5_synthetic_examples.meta.json",
    log:
        "logs/{run}/fig5_examples.log",
    shell:
        "{DDUBENCH} examples synthetic --data {input.data} --examples 2 --pdf {output.pdf} --csv {output.csv}"
        " > {log} 2>&1"


rule fig6_examples:
    input:
        deepglobe_split_inputs("test"),
    output:
        pdf=report_figure("figures/{run}/fig6_deepglobe_examples.pdf"),
        csv=report_table("results/{run}/fig6_deepglobe_examples.csv"),
        meta="results/{run}/fig6_deepglobe_examples.meta.json",
    params:
        data=lambda wildcards: f"{deepglobe_dir(wildcards.run)}/test",
    log:
        "logs/{run}/fig6_examples.log",
    shell:
        "{DDUBENCH} examples deepglobe --data {params.data} --examples 2 --pdf {output.pdf} --csv {output.csv}"
        " > {log} 2>&1"
