"""ddubench workflow: every table and figure of the DDU-Net journal paper, from raw data to CSV/PDF.

Usage (from the repository root; profiles/default is applied automatically):
    snakemake                                   # default: config/smoke.yaml -> results/smoke/, figures/smoke/
    snakemake --configfile config/cpu.yaml      # the CPU-sized run, published to results/ and figures/
    snakemake figures/fig9_heatmap.pdf          # a published figure, rebuilt from its run if out of date
    snakemake --report report.html              # the run's tables and figures by paper section, captioned

Rules call the `ddubench` CLI; all computation lives in the package (src/ddubench).
"""

from snakemake.utils import min_version

min_version("9.0")


# The default configuration applies only when no --configfile is given: Snakemake would otherwise merge
# the given file into it, and keys of the smoke config could leak into another run.
if not workflow.configfiles:

    configfile: "config/smoke.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/protocol.smk"
include: "workflow/rules/ceiling.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/deepglobe.smk"
include: "workflow/rules/deepglobe_baselines.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/table7.smk"
include: "workflow/rules/throughput.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/cnn_dnn.smk"
include: "workflow/rules/thesis.smk"
include: "workflow/rules/inria.smk"
include: "workflow/rules/publish.smk"


rule all:
    default_target: True
    input:
        default_targets(),
        caption_targets(config["run"]),
