"""Serving commands: serve (the HTTP API), apikey create/revoke/list, models export/import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from custscore.cli.common import (
    app,
    console,
    err_console,
    fail,
    fmt,
    models_app,
    opened_store,
    simple_table,
    user_errors,
    versions_text,
)
from custscore.config import Settings

ENV_METRICS_TOKEN = "CUSTSCORE_METRICS_TOKEN"

apikey_app = typer.Typer(no_args_is_help=True, help="API keys for `custscore serve`: create (shown once), revoke, list.")
app.add_typer(apikey_app, name="apikey")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    metrics_token: Annotated[str | None, typer.Option(
        "--metrics-token", help=f"Require `Authorization: Bearer TOKEN` on /metrics (default: ${ENV_METRICS_TOKEN}).")] = None,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most customers per request.")] = 1000,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body, in MB.")] = 4.0,
    processes: Annotated[int, typer.Option(
        "--processes", help="Run this many API processes on the port (one per core); they share only the store.")] = 1,
) -> None:
    """Serve scores, explanations and stored scores over HTTP (OpenAPI docs at /docs), behind API keys.

    Example: custscore apikey create app1 && custscore serve --port 8000 --processes 2
    """
    import uvicorn

    from custscore.api.app import create_app
    from custscore.api.replicas import check_processes, run_replicas
    from custscore.api.service import ScoringService

    if not 0 < port < 65536:
        raise fail(f"--port {port} is not a TCP port; use 1-65535, e.g. --port 8000")
    settings: Settings = ctx.obj
    token = metrics_token or os.environ.get(ENV_METRICS_TOKEN) or None
    with user_errors():
        check_processes(processes, settings)
    if processes > 1:
        with user_errors(), opened_store(ctx):
            pass  # a store that cannot open fails here, once, not in every replica
        console.print(f"serving on http://{host}:{port} with {processes} processes (docs: http://{host}:{port}/docs)",
                      highlight=False)
        run_replicas(settings, processes, host=host, port=port, metrics_token=token, max_batch=max_batch,
                     max_body_bytes=int(max_body_mb * 1024 * 1024))
        return
    with user_errors(), opened_store(ctx) as store:
        service = ScoringService(store, settings)
        if service.models is None:
            err_console.print(f"[yellow]warning:[/] {service.load_error}; /v1/score answers 503 until then")
        api = create_app(service, metrics_token=token, max_batch=max_batch, max_body_bytes=int(max_body_mb * 1024 * 1024))
        console.print(f"serving on http://{host}:{port} (docs: http://{host}:{port}/docs; models "
                      f"{versions_text(service.versions)})",
                      highlight=False)
        uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)


@apikey_app.command("create")
def apikey_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A name for the key, e.g. the app.")]) -> None:
    """Create an API key; it is printed once and stored only as its hash.

    Example: custscore apikey create crm-app
    """
    from custscore.api.keys import create_key

    with user_errors(), opened_store(ctx) as store:
        key = create_key(store, name)
    console.print(key, highlight=False, markup=False)
    err_console.print(f"API key {name!r} created; store it now, it cannot be shown again. "
                      "Send it as `Authorization: Bearer KEY`.", highlight=False)


@apikey_app.command("revoke")
def apikey_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke an API key: requests with it get 401 from the next request on.

    Example: custscore apikey revoke crm-app
    """
    from custscore.api.keys import revoke_key

    with user_errors(), opened_store(ctx) as store:
        revoke_key(store, name)
    console.print(f"API key {name!r} revoked")


@apikey_app.command("list")
def apikey_list(ctx: typer.Context) -> None:
    """List API keys (names and prefixes only)."""
    from custscore.api.keys import list_keys

    with user_errors(), opened_store(ctx) as store:
        keys = list_keys(store)
    if not keys:
        console.print("no API keys yet; create one with: custscore apikey create NAME")
        return
    console.print(simple_table("API keys", ("name", "prefix", "created", "state"),
                               ((k["name"], f"{k['prefix']}…", fmt(k["created_at"]), "revoked" if k["revoked"] else "active")
                                for k in keys)))


@models_app.command("export")
def models_export(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="A version from `custscore models` (an unambiguous prefix will do).")],
    file: Annotated[Path, typer.Argument(help="The zip file to write.")],
    task: Annotated[str | None, typer.Option("--task", help="The task, if the version is ambiguous.")] = None,
) -> None:
    """Write a registered model, with all its artifacts, to one verified zip file.

    Example: custscore models export 20261202-0135 churn.zip
    """
    from custscore.models.transfer import export_model

    with user_errors(), opened_store(ctx) as store:
        record = export_model(store, version, file, task)
    console.print(f"exported {record['task']} {record['version']} to {file}", highlight=False)


@models_app.command("import")
def models_import(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="A zip from `custscore models export`.")]) -> None:
    """Verify a model export and register it in this store (not promoted).

    Example: custscore models import churn.zip && custscore promote churn VERSION
    """
    from custscore.models.transfer import import_model

    if not file.is_file():
        raise fail(f"{file} does not exist; give a zip written by `custscore models export VERSION FILE`")
    with user_errors(), opened_store(ctx) as store:
        entry = import_model(store, file)
    console.print(f"imported {entry['task']} {entry['version']}; make it production with: "
                  f"custscore promote {entry['task']} {entry['version']}", highlight=False)
