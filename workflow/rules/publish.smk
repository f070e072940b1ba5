"""The committed top level: results/<name>.csv and figures/<name>.pdf are copies of the run named by
`publish_from` (config/cpu.yaml or config/paper.yaml), so smoke output can never land there."""

PUBLISH_FROM = config["publish_from"]


rule publish_table:
    input:
        csv=f"results/{PUBLISH_FROM}/{{name}}.csv",
        meta=f"results/{PUBLISH_FROM}/{{name}}.meta.json",
    output:
        csv="results/{name}.csv",
        meta="results/{name}.meta.json",
    shell:
        "cp {input.csv} {output.csv} && cp {input.meta} {output.meta}"


rule publish_figure:
    input:
        f"figures/{PUBLISH_FROM}/{{name}}.pdf",
    output:
        "figures/{name}.pdf",
    shell:
        "cp {input} {output}"
