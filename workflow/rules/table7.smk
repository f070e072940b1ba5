"""Journal Table 7: DDU-Net against GLNet, FCtL and the other baselines (results/<run>/table7.csv).

Every row is measured by one harness in one run: `ddubench inference` for one device, torchrun +
`ddubench scaling` for a DDU-Net over several ranks (one subimage group per rank). A measurement job
takes every core, so nothing runs beside it. mIoU comes from the DeepGlobe test evaluations of rows
marked `train` (rules in deepglobe.smk); other rows' mIoU stays empty with the configured reason.
"""


def table7_config(wildcards):
    return run_config(wildcards.run)["table7"]


def table7_row(wildcards):
    """The configured row of a measurement job."""
    for row in table7_config(wildcards)["rows"]:
        if row["id"] == wildcards.row:
            return row
    _fail(f"{config_file(wildcards.run)}: table7.rows has no row {wildcards.row!r}")


def table7_command(wildcards):
    """`ddubench inference` for one device; torchrun + `ddubench scaling` for a DDU-Net over several ranks."""
    cfg, row = table7_config(wildcards), table7_row(wildcards)
    side = cfg["resolution"]
    common = (f"--model {canonical(row['model'])} --warmup {cfg['warmup']} --repeats {cfg['repeats']}"
              f" --threads {cfg['threads']} --device {cfg['device']}")
    subimage = f" --subimage-size {row['subimage_size']}" if "subimage_size" in row else ""
    if row["ranks"] == 1:
        return f"{DDUBENCH} inference {common} --resolution {side}x{side}{subimage}"
    return f"{table7_launch(wildcards).torchrun()} -m ddubench scaling {common} --resolutions {side}x{side}{subimage}"


def table7_launch(wildcards):
    """The row's ranks on the configured device, `threads` torch threads each."""
    cfg = table7_config(wildcards)
    return Launch(wildcards.run, table7_row(wildcards)["ranks"], cfg["device"], cfg["threads"])


def table7_measurements(wildcards):
    return [f"results/{wildcards.run}/table7/{row['id']}.json" for row in table7_config(wildcards)["rows"]]


def table7_scores(wildcards):
    """Test evaluations (every seed) of the trained models of rows marked `train`."""
    cfg = run_config(wildcards.run)
    return [
        f"{deepglobe_run_dir(wildcards.run, canonical(row['model']), seed)}/eval_test.json"
        for row in cfg["table7"]["rows"] if row["train"]
        for seed in cfg["deepglobe"]["training"]["seeds"]
    ]


rule table7_measure:
    output:
        "results/{run}/table7/{row}.json",
    params:
        command=table7_command,
    threads: workflow.cores
    resources:
        **launch_resources(table7_launch),
    log:
        "logs/{run}/table7/{row}.log",
    shell:
        "{params.command} --out {output} > {log} 2>&1"


rule table7:
    input:
        measurements=table7_measurements,
        scores=table7_scores,
    output:
        report_table("results/{run}/table7.csv"),
        "results/{run}/table7.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table7.log",
    shell:
        "{DDUBENCH} table table7 --config {params.config} --evals {input.measurements} --scores {input.scores}"
        " --out {output[0]} > {log} 2>&1"
