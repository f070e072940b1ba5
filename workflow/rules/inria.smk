"""Thesis §7.3, Inria Aerial Image Labeling: tiles, the per-city split and building patches; the U-Net and DDU-Net
with and without communication trained on the patches and evaluated on the val/test crops; thesis Tables 7.7, 7.8
and Figs. 5.6, 7.9-7.13.

`thesis.inria.root` names the user's unpacked AerialImageDataset; `root: null` generates Inria-format tiles instead
(NOT Inria; every table's note says so). Generated tiles and their preparation are `temp`; the preparation of the
user's dataset is kept, so it is cut once.
   data/{run}/inria/{train,val,test}/{images,masks}.npy, manifest.json, split.json
   results/{run}/inria/runs/{spec}/seed{seed}/train.json, eval_{split}.json   (+ temporary best.pt)
"""

from ddubench.report.thesis_inria import inria_training

INRIA_TRAIN_FLAGS = ("lr", "max_epochs", "min_epochs", "early_stopping_patience", "lr_patience", "lr_factor",
                     "batch_size", "eval_batch_size", "dropout", "loss")


def inria_section(run):
    return run_config(run)["thesis"]["inria"]


def inria_root(wildcards):
    """The tile folder: the configured root (a missing one stops the run with one line) or the generated tiles."""
    root = inria_section(wildcards.run)["root"]
    if root is None:
        return f"data/{wildcards.run}/inria_fake"
    if not os.path.isdir(root):
        _fail(f"{config_file(wildcards.run)}: thesis.inria.root {root} does not exist; unpack the Inria Aerial Image "
              "Labeling dataset there (train/images/*.tif, train/gt/*.tif) or set root: null for generated tiles")
    return root


def inria_output(path):
    """A preparation of generated tiles is temporary; one of the user's Inria folder is kept."""
    return temp(path) if config.get("thesis", {}).get("inria", {}).get("root") is None else path


def inria_models(run):
    """The three configured models in the order of the thesis's figures: w/ communication, w/o, the U-Net."""
    models = inria_section(run)["models"]
    return [canonical(models[key]) for key in ("comm", "nocomm", "unet")]


def inria_split_inputs(*splits):
    """Input function: the manifest and arrays of ``splits`` (none given: the ``split`` wildcard)."""

    def inputs(wildcards):
        names = splits or (wildcards.split,)
        return [f"data/{wildcards.run}/inria/manifest.json"] + [
            f"data/{wildcards.run}/inria/{split}/{name}.npy" for split in names for name in ("images", "masks")]

    return inputs


def inria_device(wildcards):
    return inria_training(inria_section(wildcards.run))["device"]


rule inria_fake:
    output:
        temp(directory("data/{run}/inria_fake")),
    params:
        fake=lambda wildcards: inria_section(wildcards.run)["fake"],
    log:
        "logs/{run}/inria_fake.log",
    shell:
        "{DDUBENCH} inria-fake --out {output} --tiles-per-city {params.fake[tiles_per_city]}"
        " --size {params.fake[size]} --seed {params.fake[seed]} > {log} 2>&1"


rule inria_prepare:
    input:
        lambda wildcards: [inria_root(wildcards)] if inria_section(wildcards.run)["root"] is None else [],
    output:
        manifest=inria_output("data/{run}/inria/manifest.json"),
        split=inria_output("data/{run}/inria/split.json"),
        arrays=[inria_output(f"data/{{run}}/inria/{split}/{name}.npy")
                for split in ("train", "val", "test") for name in ("images", "masks")],
    params:
        root=inria_root,
        section=lambda wildcards: inria_section(wildcards.run),
    log:
        "logs/{run}/inria_prepare.log",
    shell:
        "{DDUBENCH} inria-prepare --root {params.root:q} --out data/{wildcards.run}/inria"
        " --val {params.section[split][val]} --test {params.section[split][test]}"
        " --split-seed {params.section[split][seed]} --crop-train {params.section[crop][train]}"
        " --overlap {params.section[crop][overlap]} --crop-eval {params.section[crop][eval]}"
        " --subimage {params.section[subimage]} --no-progress > {log} 2>&1"


def inria_training_args(wildcards):
    """Thesis Table 7.7 with the section's overlay as `ddubench train` flags."""
    training = inria_training(inria_section(wildcards.run))
    flags = [f"--{key.replace('_', '-')} {training[key]}" for key in INRIA_TRAIN_FLAGS]
    return " ".join(flags + (["--augment"] if training["augment"] else []) + [f"--device {training['device']}"])


def inria_launch(wildcards):
    """The ranks a model trains over: `ranks` / `model_ranks` of the training settings, capped by the subimages of
    a training patch (a U-Net: one process)."""
    section = inria_section(wildcards.run)
    training = inria_training(section)
    subimages = (section["crop"]["train"] // section["subimage"]) ** 2
    return Launch(wildcards.run, model_ranks(training, wildcards.spec, subimages), training["device"])


def inria_launcher(wildcards):
    launch = inria_launch(wildcards)
    return DDUBENCH if launch.ranks == 1 else f"{launch.torchrun()} -m ddubench"


rule inria_train:
    input:
        inria_split_inputs("train", "val"),
    output:
        summary="results/{run}/inria/runs/{spec}/seed{seed}/train.json",
        checkpoint=temp("results/{run}/inria/runs/{spec}/seed{seed}/best.pt"),
    params:
        launcher=inria_launcher,
        hyper=inria_training_args,
        distributed=lambda wildcards: "--distributed" if inria_launch(wildcards).ranks > 1 else "",
    threads: lambda wildcards: inria_launch(wildcards).ranks  # one torch thread per rank
    resources:
        **launch_resources(inria_launch),
    log:
        "logs/{run}/inria/train/{spec}_seed{seed}.log",
    shell:
        "{params.launcher} train --model {wildcards.spec} --data data/{wildcards.run}/inria"
        " --run-dir results/{wildcards.run}/inria/runs/{wildcards.spec}/seed{wildcards.seed}"
        " --summary {output.summary} {params.hyper} {params.distributed} --seed {wildcards.seed} --threads 1"
        " --no-progress > {log} 2>&1"


rule inria_evaluate:
    input:
        inria_split_inputs(),
        checkpoint="results/{run}/inria/runs/{spec}/seed{seed}/best.pt",
    output:
        "results/{run}/inria/runs/{spec}/seed{seed}/eval_{split}.json",
    wildcard_constraints:
        split="train|val|test",
    params:
        batch=lambda wildcards: inria_training(inria_section(wildcards.run))["eval_batch_size"],
        device=inria_device,
    threads: 1
    resources:
        **gpu_resources(inria_device),
    log:
        "logs/{run}/inria/evaluate/{spec}_seed{seed}_{split}.log",
    shell:
        "{DDUBENCH} evaluate --checkpoint {input.checkpoint} --data data/{wildcards.run}/inria/{wildcards.split}"
        " --out {output} --batch-size {params.batch} --device {params.device} --threads {threads} --no-progress"
        " > {log} 2>&1"


def inria_evals(wildcards):
    section = inria_section(wildcards.run)
    return [f"results/{wildcards.run}/inria/runs/{spec}/seed{seed}/eval_{split}.json"
            for spec in inria_models(wildcards.run) for seed in section["seeds"] for split in ("train", "val", "test")]


def inria_checkpoints(wildcards):
    """The first seed's best checkpoints, in the thesis's figure order."""
    seed = inria_section(wildcards.run)["seeds"][0]
    return [f"results/{wildcards.run}/inria/runs/{spec}/seed{seed}/best.pt" for spec in inria_models(wildcards.run)]


rule thesis_table7_7:
    output:
        report_table("results/{run}/thesis_table7_7.csv"),
        "results/{run}/thesis_table7_7.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/thesis_table7_7.log",
    shell:
        "{DDUBENCH} table thesis_table7_7 --config {params.config} --out {output[0]} > {log} 2>&1"


rule thesis_table7_8:
    input:
        inria_evals,
    output:
        report_table("results/{run}/thesis_table7_8.csv"),
        "results/{run}/thesis_table7_8.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/thesis_table7_8.log",
    shell:
        "{DDUBENCH} table thesis_table7_8 --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule thesis_fig5_6:
    input:
        inria_split_inputs("train"),
    output:
        pdf=report_figure("figures/{run}/thesis_fig5_6.pdf"),
        csv=report_table("results/{run}/thesis_fig5_6.csv"),
        meta="results/{run}/thesis_fig5_6.meta.json",
    params:
        examples=lambda wildcards: inria_section(wildcards.run)["examples"],
    log:
        "logs/{run}/thesis_fig5_6.log",
    shell:
        "{DDUBENCH} examples inria --data data/{wildcards.run}/inria/train --examples {params.examples}"
        " --pdf {output.pdf} --csv {output.csv} > {log} 2>&1"


rule thesis_fig7_9:
    input:
        inria_split_inputs("test"),
        checkpoints=inria_checkpoints,
    output:
        pdf=report_figure("figures/{run}/thesis_fig7_9.pdf"),
        csv=report_table("results/{run}/thesis_fig7_9.csv"),
        meta="results/{run}/thesis_fig7_9.meta.json",
    params:
        side=lambda wildcards: inria_section(wildcards.run)["crop"]["train"],
        device=inria_device,
    threads: 1
    log:
        "logs/{run}/thesis_fig7_9.log",
    shell:
        "{DDUBENCH} inria-predictions --checkpoints {input.checkpoints} --data data/{wildcards.run}/inria/test"
        " --side {params.side} --pdf {output.pdf} --csv {output.csv} --device {params.device}"
        " --threads {threads} > {log} 2>&1"


rule thesis_feature_maps:
    input:
        inria_split_inputs("test"),
        checkpoints=inria_checkpoints,
    output:
        pdf10=report_figure("figures/{run}/thesis_fig7_10.pdf", "thesis_fig7_11_13"),
        pdf11=report_figure("figures/{run}/thesis_fig7_11.pdf", "thesis_fig7_11_13"),
        pdf12=report_figure("figures/{run}/thesis_fig7_12.pdf", "thesis_fig7_11_13"),
        pdf13=report_figure("figures/{run}/thesis_fig7_13.pdf", "thesis_fig7_11_13"),
        csv=report_table("results/{run}/thesis_fig7_11_13.csv"),
        meta="results/{run}/thesis_fig7_11_13.meta.json",
    params:
        side=lambda wildcards: inria_section(wildcards.run)["crop"]["train"],
        device=inria_device,
    threads: 1
    log:
        "logs/{run}/thesis_feature_maps.log",
    shell:
        "{DDUBENCH} inria-feature-maps --checkpoints {input.checkpoints} --data data/{wildcards.run}/inria/test"
        " --side {params.side} --pdf7-10 {output.pdf10} --pdf7-11 {output.pdf11} --pdf7-12 {output.pdf12}"
        " --pdf7-13 {output.pdf13} --csv {output.csv} --device {params.device} --threads {threads} > {log} 2>&1"
