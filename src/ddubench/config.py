"""Workflow configuration: load a YAML file and validate it with Snakemake's JSON-schema validator.

The schema (``ddubench/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) fills defaults
and rejects unknown keys. Validation errors become one-line :class:`ConfigError` messages naming the
file, the key and the fix.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def schema_path() -> Path:
    """The path of the configuration JSON schema."""
    return Path(str(resources.files("ddubench") / "schemas" / "config.schema.yaml"))


def _one_line(error: Exception) -> str:
    """The jsonschema message behind Snakemake's validation error, plus the key path it concerns."""
    cause = error.__context__ if error.__context__ is not None else error
    message = getattr(cause, "message", str(cause)).splitlines()[0]
    where = "/".join(str(p) for p in getattr(cause, "absolute_path", [])) or "top level"
    return f"{message} (at {where})"


def validate_config(config: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled); raise :class:`ConfigError` on the first problem."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the configuration must be a YAML mapping of keys to values")
    try:
        validate(config, str(schema_path()), set_default=True)
    except WorkflowError as err:
        raise ConfigError(
            f"{source}: {_one_line(err)}; fix the key (allowed keys and types: {schema_path().name})"
        ) from None
    return config


def derived_parts(name: str, is_run: Callable[[str], bool]) -> tuple[str, str] | None:
    """(base run, variant) of a derived run's name ``<base>-<variant>``, cut at the last '-' whose left part
    ``is_run`` (a run's own name may hold '-', a variant's does not); None if no cut names a run."""
    for cut in reversed([i for i, char in enumerate(name) if char == "-"]):
        if is_run(name[:cut]):
            return name[:cut], name[cut + 1:]
    return None


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML configuration file.

    ``config/<run>-<variant>.yaml`` need not exist: it names the derived run ``<run>-<variant>`` of
    ``config/<run>.yaml`` (a protocol-study variant or ``thesis``; :func:`derived_config`), so a table of a derived
    run is built from its own resolved settings like any other run's.
    """
    path = Path(path)
    parts = None if path.exists() else derived_parts(path.stem, lambda base: path.with_name(base + path.suffix).exists())
    if parts is not None:
        base_path = path.with_name(parts[0] + path.suffix)
        return derived_config(load_config(base_path), parts[1], str(base_path))
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; pick one of config/smoke.yaml, config/cpu.yaml, config/paper.yaml")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); fix the syntax") from None
    return validate_config(config, str(path))


def published_source(publishing: dict[str, Any], name: str) -> str:
    """The run the top-level output ``name`` is copied from, given the configuration of the ``publish_from``
    run: its ``publish_overrides`` entry, else that run itself."""
    return publishing["publish_overrides"].get(name, publishing["run"])


def cell_seeds(config: dict[str, Any], k: int) -> list[int]:
    """The training seeds of the synthetic cells with ``k`` subimages (``seeds`` unless ``fewer_seeds`` lists k)."""
    for exception in config.get("fewer_seeds", []):
        if k in exception["ks"]:
            return exception["seeds"]
    return config["seeds"]


def seeds_note(config: dict[str, Any]) -> str:
    """How many seeds each k of the synthetic grid has, and why some have fewer."""
    total = len(config["seeds"])
    parts = [f"{total} seed{'s' if total > 1 else ''} per cell"]
    for exception in config.get("fewer_seeds", []):
        ks = ", ".join(str(k) for k in exception["ks"])
        count = len(exception["seeds"])
        parts.append(f"k = {ks}: {count} seed{'s' if count > 1 else ''} ({exception['reason']})")
    return "; ".join(parts)


def protocol_variants(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The protocol-study variants of ``config`` by name (empty without a ``protocol_study`` section)."""
    return {variant["name"]: variant for variant in config.get("protocol_study", {}).get("variants", [])}


def variant_run(run: str, variant: dict[str, Any]) -> str:
    """The run whose models a variant trains: ``<run>-<variant>`` when it changes the training or the data
    (a derived configuration), else ``run`` itself (the variant only adds spec tokens, or none)."""
    return f"{run}-{variant['name']}" if variant.get("training") or variant.get("synthetic") else run


def variant_spec(spec: str, variant: dict[str, Any]) -> str:
    """``spec`` with the variant's model tokens that its model takes (e.g. ``_NP`` only for DDU-Nets)."""
    from .models import ModelSpec
    from .models.registry import MODELS

    parsed = ModelSpec.parse(spec)
    accepted = MODELS[parsed.name].all_keys
    tokens = [token for token in variant.get("model_tokens", []) if token[0] in accepted]
    return str(ModelSpec.parse("_".join([str(parsed), *tokens])))


# sections that compare the base run with other runs: a derived run does not inherit them
BASE_RUN_ONLY = ("protocol_study", "fig9_budgets")

# the derived run <run>-thesis of the thesis's own experiments (thesis.synthetic, thesis.deepglobe_ablation)
THESIS_RUN = "thesis"


def thesis_synthetic_ks(section: dict[str, Any]) -> list[int]:
    """The k values the thesis's synthetic experiments of ``thesis.synthetic`` train on."""
    ks = {section["table7_4"]["k"], section["fig7_6"]["k"], *section["fig7_8"]["ks"], *section["fig7_8"]["test_ks"]}
    return sorted(ks)


def derived_variants(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every derived run of ``config`` by name: its protocol-study variants, and ``thesis`` where the config has
    ``thesis.synthetic`` (the thesis placement rule and image counts, the run's training with the section's
    ``training`` laid over it) or ``thesis.deepglobe_ablation`` (thesis Table 7.10 over ``deepglobe.training``)."""
    variants = dict(protocol_variants(config))
    thesis = config.get("thesis", {})
    section, ablation = thesis.get("synthetic"), thesis.get("deepglobe_ablation")
    if section is None and ablation is None:
        return variants
    if THESIS_RUN in variants:
        raise ConfigError(f"protocol_study variant {THESIS_RUN!r} clashes with the thesis's derived run; rename it")
    variant: dict[str, Any] = {
        "name": THESIS_RUN, "description": "the thesis's own experiments (thesis §7.2: placement rule thesis, line "
                                           "width 2; §7.4: DeepGlobe with Table 7.10's hyperparameters)"}
    if section is not None:
        variant.update(seeds=section["seeds"], training=section.get("training", {}),
                       synthetic={"rule": "thesis", "counts": section["counts"], "ks": thesis_synthetic_ks(section)})
    if ablation is not None:
        from .report.paper import THESIS_TABLE7_10

        variant["deepglobe_training"] = {**THESIS_TABLE7_10, **ablation["training"], "seeds": ablation["seeds"]}
    variants[THESIS_RUN] = variant
    return variants


def derived_config(base: dict[str, Any], variant_name: str, source: str = "<config>") -> dict[str, Any]:
    """The configuration of run ``<base run>-<variant>``: ``base`` with the variant's training and synthetic
    settings (and seeds) laid over its own (validated like any configuration)."""
    variants = derived_variants(base)
    if variant_name not in variants:
        raise ConfigError(f"{source}: run {base['run']}-{variant_name} names no protocol_study variant "
                          f"{variant_name!r} and no derived run; known: {', '.join(variants) or 'none'}")
    variant = variants[variant_name]
    derived = copy.deepcopy({key: value for key, value in base.items() if key not in BASE_RUN_ONLY})
    for section in ("training", "synthetic"):
        derived[section] = {**derived[section], **variant.get(section, {})}
    if "deepglobe_training" in variant:
        derived.setdefault("deepglobe", {})["training"] = {**derived.get("deepglobe", {}).get("training", {}),
                                                           **variant["deepglobe_training"]}
    if "seeds" in variant:
        derived["seeds"] = list(variant["seeds"])
        derived.pop("fewer_seeds", None)
    derived["run"] = f"{base['run']}-{variant_name}"
    derived["description"] = f"{base.get('description', '').strip()} Derived run {variant_name}: " \
                             f"{variant['description']}"
    return validate_config(derived, f"{source} ({variant_name} derived run)")
