"""Journal Tables 1 (random patching) and 2 (downsampling) on DeepGlobe.

Every size in `deepglobe_baselines` is one model spec (patching_P<s>, downsampling_S<s>), trained and evaluated
by the generic DeepGlobe rules of deepglobe.smk (deepglobe_train, deepglobe_evaluate) for every seed of
`deepglobe.training`; the table reads each run's train.json and its evaluations on the training split, the test
split and the split that selects the reported repeat (`deepglobe.training.select_on`).
"""

BASELINE_SPECS = {"table1": ("patch_sizes", "patching_P"), "table2": ("down_sizes", "downsampling_S")}


def baseline_specs(run, table):
    """The model specs of journal Table 1 or 2 in a run; a size larger than the training crops stops the run."""
    cfg = run_config(run)
    key, prefix = BASELINE_SPECS[table]
    crop = cfg["deepglobe"]["crop"]["train"]
    too_large = [size for size in cfg["deepglobe_baselines"][key] if size > crop]
    if too_large:
        _fail(f"{config_file(run)}: deepglobe_baselines.{key} {too_large} exceed the {crop} px training crops "
              "(deepglobe.crop.train); use sizes up to the crop side")
    return [canonical(f"{prefix}{size}") for size in cfg["deepglobe_baselines"][key]]


def baseline_records(wildcards):
    """train.json and the evaluations on train, test and the selecting split of every run of a table."""
    training = run_config(wildcards.run)["deepglobe"]["training"]
    names = ["train.json"] + [f"eval_{split}.json" for split in sorted({"train", "test", training["select_on"]})]
    return [f"{deepglobe_run_dir(wildcards.run, spec, seed)}/{name}"
            for spec in baseline_specs(wildcards.run, wildcards.table) for seed in training["seeds"] for name in names]


rule baseline_table:
    input:
        baseline_records,
    output:
        report_table("results/{run}/{table}.csv"),
        "results/{run}/{table}.meta.json",
    wildcard_constraints:
        table="table1|table2",
    params:
        config=run_config_file,
    log:
        "logs/{run}/{table}.log",
    shell:
        "{DDUBENCH} table {wildcards.table} --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"
