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
