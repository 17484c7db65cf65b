"""`forecast serve`: serves the deployments of deploy/prefect.yaml from one process, so the file
is the single source of truth for the embedded case (no work pool, no worker) and for
`prefect deploy --all --prefect-file deploy/prefect.yaml` with a process worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forecasting.config import build_config
from forecasting.errors import ConfigError

# Resolved against the working directory, not shipped in the wheel: the file is the operator's
# to edit, and `prefect deploy --prefect-file deploy/prefect.yaml` and its workers read it (and
# the entrypoint flows/pipeline.py it names) from a checkout anyway. Relative paths in its
# parameters resolve against the working directory of each run.
DEPLOY_FILE = Path("deploy") / "prefect.yaml"
FLEET_ENTRYPOINT = "flows/fleet.py:forecast_fleet"  # every other entry is forecast_pipeline
# A run whose process dies stops sending heartbeats; the crash automation (flows/automations.py)
# marks it Crashed after `HEARTBEAT_SECONDS` plus a margin, which frees its concurrency slot.
HEARTBEAT_SECONDS = 30


def read_deployments(path: Path = DEPLOY_FILE) -> list[dict]:
    """The `deployments` entries of a prefect.yaml.

    Raises:
        ConfigError: The file is missing, not YAML, or lists no deployments.
    """
    import yaml

    try:
        spec = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        where = "" if Path(path).is_absolute() else f" in the working directory {str(Path.cwd())!r}"
        raise ConfigError(
            f"Deployment file {str(path)!r} does not exist{where}. Run `forecast serve` from "
            "the folder that holds deploy/prefect.yaml (the repository root) or pass "
            "--file path/to/prefect.yaml."
        ) from None
    except OSError as error:
        raise ConfigError(f"Cannot read {str(path)!r}: {error.strerror or error}.") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{str(path)!r} is not valid YAML: {error}") from None
    deployments = spec.get("deployments") if isinstance(spec, dict) else None
    if not deployments:
        raise ConfigError(f"{str(path)!r} lists no deployments under `deployments:`.")
    return deployments


def to_deployments(entries: list[dict], only: list[str] | None = None) -> list[Any]:
    """Turns prefect.yaml entries into runner deployments of `forecast_pipeline` (of
    `forecast_fleet` for its entrypoint), with their schedules (time zones included),
    parameters, tags, descriptions and concurrency limits."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    from flows.fleet import forecast_fleet
    from flows.pipeline import forecast_pipeline

    flows = {FLEET_ENTRYPOINT: forecast_fleet}
    known = [entry["name"] for entry in entries]
    unknown = sorted(set(only or []) - set(known))
    if unknown:
        raise ConfigError(f"No deployment named {unknown} in the file; it has {known}.")
    chosen = [entry for entry in entries if not only or entry["name"] in only]
    deployments = []
    for entry in chosen:
        # A mistake in the parameters shows here, in one line, not as the server's HTTP 422.
        build_config(
            (entry.get("parameters") or {}).get("config") or {},
            source=(f"parameters.config of deployment {entry['name']!r}"),
        )
        limit = entry.get("concurrency_limit")
        deployments.append(
            flows.get(entry.get("entrypoint", ""), forecast_pipeline).to_deployment(
                name=entry["name"],
                description=entry.get("description"),
                tags=entry.get("tags"),
                parameters=entry.get("parameters"),
                schedules=[_schedule(item) for item in entry.get("schedules") or []],
                concurrency_limit=ConcurrencyLimitConfig(**limit)
                if isinstance(limit, dict)
                else limit,
            )
        )
    return deployments


def _schedule(item: dict) -> Any:
    from prefect.schedules import Cron, Interval, RRule

    common = {
        "timezone": item.get("timezone"),
        "active": item.get("active", True),
        "parameters": item.get("parameters") or {},
        "slug": item.get("slug"),
    }
    if "cron" in item:
        return Cron(item["cron"], day_or=item.get("day_or", True), **common)
    if "interval" in item:
        return Interval(item["interval"], anchor_date=item.get("anchor_date"), **common)
    return RRule(item["rrule"], **common)


def serve(path: Path = DEPLOY_FILE, only: list[str] | None = None) -> None:
    """Serves the deployments until interrupted; runs execute in subprocesses of this one."""
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    from prefect import serve as prefect_serve

    prefect_serve(*to_deployments(read_deployments(path), only))
