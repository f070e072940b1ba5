"""Receptive field and memory (journal Tables 4 and 5 from the modules; Fig. 7 measured on this machine).

Tables 4 and 5 need no data or training. Fig. 7 measures inference peak memory over the configured
subimage resolutions (`fig7` in the config); resolutions whose predicted peak exceeds `fig7.max_memory_mb`
are listed with the prediction only.
"""


rule table4:
    output:
        report_table("results/{run}/table4.csv"),
        "results/{run}/table4.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table4.log",
    shell:
        "{DDUBENCH} table table4 --config {params.config} --out {output[0]} > {log} 2>&1"


rule table5:
    output:
        report_table("results/{run}/table5.csv"),
        "results/{run}/table5.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table5.log",
    shell:
        "{DDUBENCH} table table5 --config {params.config} --out {output[0]} > {log} 2>&1"


rule fig7_table:
    output:
        report_table("results/{run}/fig7_memory.csv"),
        "results/{run}/fig7_memory.meta.json",
    params:
        config=run_config_file,
    threads: 2
    resources:
        **gpu_resources(lambda wildcards: run_config(wildcards.run)["fig7"]["device"], threads=2),
    log:
        "logs/{run}/fig7_table.log",
    shell:
        "{DDUBENCH} table fig7 --config {params.config} --threads {threads} --out {output[0]} > {log} 2>&1"


rule fig7_figure:
    input:
        "results/{run}/fig7_memory.csv",
    output:
        report_figure("figures/{run}/fig7_memory.pdf"),
    log:
        "logs/{run}/fig7_figure.log",
    shell:
        "{DDUBENCH} figure fig7 --csv {input} --out {output} > {log} 2>&1"
