"""Figures of one run, drawn only from their results CSV (byte-reproducible PDFs)."""


rule fig9_figure:
    input:
        "results/{run}/fig9_heatmap.csv",
    output:
        report_figure("figures/{run}/fig9_heatmap.pdf"),
    log:
        "logs/{run}/fig9_figure.log",
    shell:
        "{DDUBENCH} figure fig9 --csv {input} --out {output} > {log} 2>&1"


rule fig11_figure:
    input:
        "results/{run}/fig11_generalization.csv",
    output:
        report_figure("figures/{run}/fig11_generalization.pdf"),
    log:
        "logs/{run}/fig11_figure.log",
    shell:
        "{DDUBENCH} figure fig11 --csv {input} --out {output} > {log} 2>&1"
