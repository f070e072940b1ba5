"""Results tables of one run: CSV beside the paper's values, with a provenance sidecar each.

Aggregation is cheap and reruns whenever an evaluation record is newer (also after a fresh clone's
checkout); training and evaluation never rerun for that, because their inputs are temporary files.
"""


rule table8:
    output:
        report_table("results/{run}/table8.csv"),
        "results/{run}/table8.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table8.log",
    shell:
        "{DDUBENCH} table table8 --config {params.config} --out {output[0]} > {log} 2>&1"


rule table10:
    output:
        report_table("results/{run}/table10.csv"),
        "results/{run}/table10.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/table10.log",
    shell:
        "{DDUBENCH} table table10 --config {params.config} --out {output[0]} > {log} 2>&1"


rule fig9_table:
    input:
        evals=fig9_evals,
        ceilings=lambda wildcards: grid_ceilings(wildcards, on_own_k=True),
    output:
        report_table("results/{run}/fig9_heatmap.csv"),
        "results/{run}/fig9_heatmap.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/fig9_table.log",
    shell:
        "{DDUBENCH} table fig9 --config {params.config} --evals {input.evals} --ceilings {input.ceilings}"
        " --out {output[0]} > {log} 2>&1"


rule fig11_table:
    input:
        evals=fig11_evals,
        ceilings=lambda wildcards: grid_ceilings(wildcards, on_own_k=False),
    output:
        report_table("results/{run}/fig11_generalization.csv"),
        "results/{run}/fig11_generalization.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/fig11_table.log",
    shell:
        "{DDUBENCH} table fig11 --config {params.config} --evals {input.evals} --ceilings {input.ceilings}"
        " --out {output[0]} > {log} 2>&1"


rule fig10_table:
    input:
        fig10_evals,
    output:
        report_table("results/{run}/fig10_depth.csv"),
        "results/{run}/fig10_depth.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/fig10_table.log",
    shell:
        "{DDUBENCH} table fig10 --config {params.config} --evals {input} --out {output[0]} > {log} 2>&1"


rule fig10_predictions:
    input:
        unpack(fig10_data),
        checkpoints=fig10_checkpoints,
    output:
        csv=report_table("results/{run}/fig10_predictions.csv"),
        meta="results/{run}/fig10_predictions.meta.json",
        pdf=report_figure("figures/{run}/fig10_depth.pdf"),
    params:
        examples=lambda wildcards: run_config(wildcards.run)["fig10"]["examples"],
    threads: 1
    log:
        "logs/{run}/fig10_predictions.log",
    shell:
        "{DDUBENCH} predictions --checkpoints {input.checkpoints} --data {input.data}"
        " --examples {params.examples} --pdf {output.pdf} --csv {output.csv} --threads {threads} > {log} 2>&1"


rule predictions:
    input:
        unpack(prediction_data),
        checkpoints=prediction_checkpoints,
    output:
        csv=report_table("results/{run}/fig8_predictions.csv"),
        meta="results/{run}/fig8_predictions.meta.json",
        pdf=report_figure("figures/{run}/fig8_predictions.pdf"),
    params:
        examples=lambda wildcards: run_config(wildcards.run)["predictions"]["examples"],
    threads: 1
    log:
        "logs/{run}/predictions.log",
    shell:
        "{DDUBENCH} predictions --checkpoints {input.checkpoints} --data {input.data}"
        " --examples {params.examples} --pdf {output.pdf} --csv {output.csv} --threads {threads} > {log} 2>&1"
