"""The Snakemake report (`snakemake --report report.html`): every table and figure of the run, grouped by
paper section, each captioned with what the paper shows, how ours was produced and the comparison with
the paper (text written by rule `captions` from the table and its sidecar; ddubench.report.captions)."""

from ddubench.report import captions


def _caption_name(path):
    """`results/{run}/scaling_{device}.csv` -> `scaling_device`: the caption file in workflow/report/."""
    return os.path.basename(path).rsplit(".", 1)[0].replace("{", "").replace("}", "")


def _report(path, table):
    """``path`` flagged for the report, in the section of its table; caption workflow/report/<table>.rst."""
    if "{" in table:
        section = lambda wildcards: captions.item(table.format(**wildcards))[0]
        item = lambda wildcards: captions.item(table.format(**wildcards))[1]
    else:
        section, item = captions.item(table)[:2]
    return report(path, caption=f"../report/{_caption_name(table)}.rst", category=section, subcategory=item)


def report_table(path):
    """A results CSV of a run, shown in the report with its caption (which renders the table)."""
    return _report(path, os.path.basename(path)[: -len(".csv")])


def report_figure(path, table=None):
    """A figure PDF of a run, captioned like the table it is drawn from (default: the one of the same name)."""
    return _report(path, table or os.path.basename(path)[: -len(".pdf")])


def caption_names(run):
    """The tables of ``run`` that have a report caption."""
    tables, _ = run_outputs(run)
    return [name for name in tables if name in captions.ITEMS]


def caption_targets(run):
    """The folder of caption texts every report item of ``run`` includes."""
    return [f"results/{run}/captions"]


rule captions:
    """Every caption of a run in one job (each `run:` job would be a Snakemake process of its own)."""
    input:
        csvs=lambda wildcards: [f"results/{wildcards.run}/{name}.csv" for name in caption_names(wildcards.run)],
        metas=lambda wildcards: [f"results/{wildcards.run}/{name}.meta.json" for name in caption_names(wildcards.run)],
    output:
        directory("results/{run}/captions"),
    run:
        os.makedirs(output[0], exist_ok=True)
        for name, csv, meta in zip(caption_names(wildcards.run), input.csvs, input.metas):
            captions.write_caption(name, csv, meta, f"{output[0]}/{name}.rst")
