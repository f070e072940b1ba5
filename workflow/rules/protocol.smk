"""The synthetic protocol study (config `protocol_study`): a few Fig. 9 cells under named protocol variants.

A variant with training or synthetic settings trains through the ordinary `generate_synthetic`, `train` and
`evaluate` rules in the derived run `<run>-<variant>` (its configuration is the run's with the variant laid
over it); a variant with spec tokens trains in the run itself under the extended spec (`..._NP`). So every
study model is trained, resumed and recorded exactly like a grid model.
"""

from ddubench.report.protocol import protocol_cells


def protocol_evals(wildcards):
    """Test and validation evaluation JSONs of every model of the study."""
    cells = protocol_cells(run_config(wildcards.run))
    return [path for cell in cells for path in (cell.test_eval, cell.val_eval)]


def protocol_ceilings(wildcards):
    """Receptive-field ceiling JSONs of the study's model classes on each variant's data (none without `ceiling`)."""
    cfg = run_config(wildcards.run)
    if "ceiling" not in cfg:
        return []
    return list(dict.fromkeys(cell.ceiling for cell in protocol_cells(cfg) if cell.ceiling))


rule evaluate_val:
    input:
        checkpoint="results/{run}/runs/k{k}/{spec}/seed{seed}/best.pt",
        data="data/{run}/synthetic/k{k}/val.npz",
        manifest="data/{run}/synthetic/k{k}/manifest.json",
    output:
        "results/{run}/runs/k{k}/{spec}/seed{seed}/eval_val.json",
    threads: 1
    log:
        "logs/{run}/evaluate/k{k}_{spec}_seed{seed}_on_val.log",
    shell:
        "{DDUBENCH} evaluate --checkpoint {input.checkpoint} --data {input.data} --out {output}"
        " --threads {threads} --no-progress > {log} 2>&1"


rule protocol_table:
    input:
        evals=protocol_evals,
        ceilings=protocol_ceilings,
    output:
        report_table("results/{run}/protocol_study.csv"),
        "results/{run}/protocol_study.meta.json",
    params:
        config=run_config_file,
    log:
        "logs/{run}/protocol_table.log",
    shell:
        "{DDUBENCH} table protocol --config {params.config} --evals {input.evals} --ceilings {input.ceilings}"
        " --out {output[0]} > {log} 2>&1"


rule protocol_figures:
    input:
        "results/{run}/protocol_study.csv",
    output:
        bars=report_figure("figures/{run}/protocol_study.pdf"),
        distance=report_figure("figures/{run}/protocol_by_distance.pdf", "protocol_study"),
    log:
        "logs/{run}/protocol_figures.log",
    shell:
        "({DDUBENCH} figure protocol --csv {input} --out {output.bars}"
        " && {DDUBENCH} figure protocol_distance --csv {input} --out {output.distance}) > {log} 2>&1"


# ------------------------------------------------------------------ Fig. 9 at several budgets side by side
# Config `fig9_budgets.runs` names the runs whose Fig. 9 tables are compared (e.g. the cpu budget, the paper's
# budget, the paper's budget on thesis-rule data); each table is built by its own run's rules.


def budget_runs(wildcards):
    return run_config(wildcards.run)["fig9_budgets"]["runs"]


rule fig9_budgets_table:
    input:
        lambda wildcards: [f"results/{run}/fig9_heatmap.csv" for run in budget_runs(wildcards)],
    output:
        report_table("results/{run}/fig9_budgets.csv"),
        "results/{run}/fig9_budgets.meta.json",
    params:
        config=run_config_file,
        grids=lambda wildcards: " ".join(f"{run}=results/{run}/fig9_heatmap.csv" for run in budget_runs(wildcards)),
    log:
        "logs/{run}/fig9_budgets_table.log",
    shell:
        "{DDUBENCH} table fig9_budgets --config {params.config} --grids {params.grids} --out {output[0]} > {log} 2>&1"


rule fig9_budgets_figure:
    input:
        "results/{run}/fig9_budgets.csv",
    output:
        report_figure("figures/{run}/fig9_budgets.pdf"),
    log:
        "logs/{run}/fig9_budgets_figure.log",
    shell:
        "{DDUBENCH} figure fig9_budgets --csv {input} --out {output} > {log} 2>&1"
