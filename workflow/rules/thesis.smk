"""The thesis's own experiments (seed 001). Tables 6.4, 6.5, 7.5 and 7.6 need no data or training: they come
from the modules and the memory model (ddubench.report.thesis_tables), beside the thesis's values."""

THESIS_EXACT = ["thesis_table6_4", "thesis_table6_5", "thesis_table7_5", "thesis_table7_6"]


rule thesis_exact_table:
    output:
        report_table("results/{run}/{name}.csv"),
        "results/{run}/{name}.meta.json",
    wildcard_constraints:
        name="|".join(THESIS_EXACT),
    params:
        config=run_config_file,
    log:
        "logs/{run}/{name}.log",
    shell:
        "{DDUBENCH} table {wildcards.name} --config {params.config} --out {output[0]} > {log} 2>&1"


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
