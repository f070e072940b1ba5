"""The committed top level: results/<name>.csv and figures/<name>.pdf are copies of the run named by
`publish_from` (config/cpu.yaml or config/paper.yaml), so smoke output can never land there; an output named
in that run's `publish_overrides` is copied from the run given there instead."""

PUBLISH_FROM = config["publish_from"]


def publish_source(name):
    """The run whose results/<run>/<name>.csv and figures/<run>/<name>.pdf the top level copies."""
    return published_source(run_config(PUBLISH_FROM), name)


def _check_publish_overrides():
    """Stop before any job runs when an override names an output the top level lacks or its run cannot make."""
    published_tables, published_figures = run_outputs(PUBLISH_FROM)
    for name, run in run_config(PUBLISH_FROM)["publish_overrides"].items():
        if name not in published_tables + published_figures:
            _fail(f"{config_file(PUBLISH_FROM)}: publish_overrides names {name!r}, which is not a published output; "
                  f"use one of {', '.join(dict.fromkeys(published_tables + published_figures))}")
        tables, figures = run_outputs(run)
        if (name in published_tables and name not in tables) or (name in published_figures and name not in figures):
            _fail(f"{config_file(PUBLISH_FROM)}: publish_overrides takes {name!r} from run {run!r}, "
                  f"which does not make it; name a run whose configuration has it")


_check_publish_overrides()


rule publish_table:
    input:
        csv=lambda wildcards: f"results/{publish_source(wildcards.name)}/{wildcards.name}.csv",
        meta=lambda wildcards: f"results/{publish_source(wildcards.name)}/{wildcards.name}.meta.json",
    output:
        csv="results/{name}.csv",
        meta="results/{name}.meta.json",
    shell:
        "cp {input.csv} {output.csv} && cp {input.meta} {output.meta}"


rule publish_figure:
    input:
        lambda wildcards: f"figures/{publish_source(wildcards.name)}/{wildcards.name}.pdf",
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

