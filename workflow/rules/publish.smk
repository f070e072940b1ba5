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


# The headline figures the README shows as images (a code-hosting page renders PNG, not PDF): figure name
# -> `ddubench figure` name, drawn from the published table.
README_IMAGES = {"fig9_heatmap": "fig9", "fig11_generalization": "fig11", "fig7_memory": "fig7",
                 "scaling_cpu": "scaling"}


rule readme_image:
    input:
        "results/{name}.csv",
    output:
        "figures/{name}.png",
    wildcard_constraints:
        name="|".join(README_IMAGES),
    params:
        figure=lambda wildcards: README_IMAGES[wildcards.name],
    log:
        "logs/readme_image_{name}.log",
    shell:
        "{DDUBENCH} figure {params.figure} --csv {input} --out {output} > {log} 2>&1"

