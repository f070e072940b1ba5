"""DeepGlobe Land Cover (journal Sec. V-B): tiles, split and crops, journal Tables 3 and 9.

`deepglobe.root` names the user's DeepGlobe folder; `root: null` generates DeepGlobe-format fake tiles
instead (NOT DeepGlobe; Table 3's note says so). Generated tiles and their preparation are `temp`, like the
synthetic datasets, so a committed table never forces them to be rebuilt; the preparation of a user's
DeepGlobe folder is kept, so it is cut once and reused.
"""


def deepglobe_dir(run):
    """Where the prepared (split, cropped, class-id) DeepGlobe data of a run lives."""
    return f"data/{run}/deepglobe"


def deepglobe_fake_dir(run):
    """Where the generated DeepGlobe-format tiles of a run live."""
    return f"data/{run}/deepglobe_fake"


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
        "results/{run}/table3.csv",
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
        "results/{run}/table9.csv",
        "results/{run}/table9.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table9.log",
    shell:
        "{DDUBENCH} table table9 --config {params.config} --out {output[0]} > {log} 2>&1"
