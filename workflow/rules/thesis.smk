"""The thesis's own experiments (seed 001). Tables 6.4, 6.5, 7.5 and 7.6 need no data or training: they come
from the modules and the memory model (ddubench.report.thesis_tables), beside the thesis's values; where the
config has `thesis.table7_5`, Table 7.5 adds the per-rank training peak measured over N = 1, 2, 4 ranks."""

from ddubench.report.thesis_tables import INRIA_IO, TABLE7_5_SPECS, TABLE7_5_SPLITS

THESIS_EXACT = ["thesis_table6_4", "thesis_table6_5", "thesis_table7_5", "thesis_table7_6"]


def table7_5_config(wildcards):
    """`thesis.table7_5` of the run (None: Table 7.5 is built without the measured per-rank peaks)."""
    return run_config(wildcards.run).get("thesis", {}).get("table7_5")


def table7_5_measurements(wildcards):
    """Table 7.5's measurement records, one per device count, when the run measures them."""
    if wildcards.name != "thesis_table7_5" or not table7_5_config(wildcards):
        return []
    return [f"results/{wildcards.run}/thesis/table7_5_N{devices}.json" for devices in TABLE7_5_SPLITS]


rule thesis_exact_table:
    input:
        table7_5_measurements,
    output:
        report_table("results/{run}/{name}.csv"),
        "results/{run}/{name}.meta.json",
    wildcard_constraints:
        name="|".join(THESIS_EXACT),
    params:
        config=run_config_file,
        evals=lambda wildcards, input: f"--evals {' '.join(input)}" if input else "",
    log:
        "logs/{run}/{name}.log",
    shell:
        "{DDUBENCH} table {wildcards.name} --config {params.config} {params.evals} --out {output[0]} > {log} 2>&1"


def table7_5_launch(wildcards):
    """N ranks, one thread each, on the configured device."""
    return Launch(wildcards.run, wildcards.devices, table7_5_config(wildcards)["device"], 1)


def table7_5_layout(wildcards):
    """The grid, subimage and channels of the N-device split of Table 7.5's 512x512 RGB image."""
    subimage, grid = TABLE7_5_SPLITS[int(wildcards.devices)]
    return (f"--grid {grid[0]}x{grid[1]} --subimage {subimage[0]}x{subimage[1]}"
            f" --in-channels {INRIA_IO['in_channels']} --num-classes {INRIA_IO['num_classes']}")


rule thesis_table7_5_measure:
    output:
        "results/{run}/thesis/table7_5_N{devices}.json",
    wildcard_constraints:
        devices="|".join(str(devices) for devices in TABLE7_5_SPLITS),
    params:
        cfg=table7_5_config,
        launcher=lambda wildcards: table7_5_launch(wildcards).torchrun(),
        layout=table7_5_layout,
        spec=TABLE7_5_SPECS["DDU-Net"],
    threads: workflow.cores
    resources:
        **launch_resources(table7_5_launch),
    log:
        "logs/{run}/thesis/table7_5_N{devices}.log",
    shell:
        "{params.launcher} -m ddubench measure step-time --distributed --model {params.spec} {params.layout}"
        " --batch-size 1 --warmup {params.cfg[warmup]} --repeats {params.cfg[repeats]} --threads 1"
        " --device {params.cfg[device]} --out {output} > {log} 2>&1"


# The positional-encoding probe (thesis §6.1.3): one record per padding, Tables 6.2 and 6.3 and Fig. 6.4 from
# them, Fig. 6.5 from the modules.
PADDINGS = ["valid", "same", "full"]


def positional_config(wildcards):
    return run_config(wildcards.run)["thesis"]["positional"]


def positional_records(wildcards):
    return [f"results/{wildcards.run}/thesis/positional_{padding}.json" for padding in PADDINGS]


rule positional_train:
    output:
        "results/{run}/thesis/positional_{padding}.json",
    wildcard_constraints:
        padding="|".join(PADDINGS),
    params:
        cfg=positional_config,
    threads: 1
    log:
        "logs/{run}/thesis/positional_{padding}.log",
    shell:
        "{DDUBENCH} positional-encoding --padding {wildcards.padding} --epochs {params.cfg[epochs]}"
        " --lr {params.cfg[lr]} --batch-size {params.cfg[batch_size]} --train {params.cfg[train]}"
        " --val {params.cfg[val]} --seed {params.cfg[seed]} --data-seed {params.cfg[data_seed]}"
        " --threads {threads} --out {output} --no-progress > {log} 2>&1"


rule thesis_positional_table:
    input:
        positional_records,
    output:
        report_table("results/{run}/{name}.csv"),
        "results/{run}/{name}.meta.json",
    wildcard_constraints:
        name="thesis_table6_2|thesis_table6_3",
    params:
        config=run_config_file,
    log:
        "logs/{run}/{name}.log",
    shell:
        "{DDUBENCH} table {wildcards.name} --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule thesis_fig6_4:
    input:
        positional_records,
    output:
        report_figure("figures/{run}/thesis_fig6_4.pdf", "thesis_table6_3"),
    log:
        "logs/{run}/thesis_fig6_4.log",
    shell:
        "{DDUBENCH} figure thesis_fig6_4 --evals {input} --out {output} > {log} 2>&1"


rule thesis_fig6_5:
    output:
        report_figure("figures/{run}/thesis_fig6_5.pdf", "thesis_table6_2"),
    log:
        "logs/{run}/thesis_fig6_5.log",
    shell:
        "{DDUBENCH} figure thesis_fig6_5 --out {output} > {log} 2>&1"
