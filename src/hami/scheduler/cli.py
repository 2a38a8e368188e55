"""`hami scheduler`: the extender + webhook service."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

from hami.config import ConfigError, load_config
from hami.flags import parse_duration
from hami.scheduler.main import LeadershipLost, ListenError, run
from hami.scheduler.settings import SchedulerSettings, default_identity, split_host_port


def scheduler(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    http_bind: Annotated[str, typer.Option(help="listen address host:port")] = "127.0.0.1:8080",
    cert_file: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
    key_file: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
    metrics_bind_address: Annotated[
        str,
        typer.Option(
            help="plain-HTTP /metrics listener, host:port (HAMi's :9395); '' for none."
            " /metrics on --http-bind (TLS with --cert-file) stays"
        ),
    ] = ":9395",
    extender_bind: Annotated[
        str,
        typer.Option(
            help="serve /filter and /bind on this host:port of their own ('' : on --http-bind);"
            " with --client-ca-file only clients with a certificate from that CA are served"
        ),
    ] = "",
    client_ca_file: Annotated[
        Path | None,
        typer.Option(
            help="CA (PEM) whose client certificates (clientAuth) the --extender-bind listener"
            " requires: kube-scheduler's extender tlsConfig certFile/keyFile"
        ),
    ] = None,
    kube_scheduler_client_cert: Annotated[
        Path | None,
        typer.Option(
            help="kube-scheduler's client certificate (the file it reads at start); when it"
            " changes, kube-scheduler in this pod (shareProcessNamespace) gets SIGTERM so that"
            " it restarts with the new one"
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option(help="request body cap in bytes (413 above; kube-apiserver's is 3 MiB)")
    ] = 3 * 1024 * 1024,
    header_timeout: Annotated[
        str, typer.Option(help="a connection must send a request head within this")
    ] = "10s",
    body_timeout: Annotated[
        str, typer.Option(help="a request body must arrive within this (408 after)")
    ] = "10s",
    max_in_flight: Annotated[
        int, typer.Option(help="requests in flight per listener (503 above; probes exempt)")
    ] = 64,
    simulation_max_nodes: Annotated[
        int, typer.Option(help="a simulation-mode /filter (full Nodes) with more is refused")
    ] = 5000,
    cert_reload_interval: Annotated[
        str, typer.Option(help="reload the TLS files this often when they change (0: never)")
    ] = "10s",
    decision_ttl: Annotated[
        str,
        typer.Option(help="a decision on a pod never bound stops counting after this (0: never)"),
    ] = "5m",
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig (default: env)")] = None,
    dra_namespaces: Annotated[
        str | None,
        typer.Option(
            help="DRA mode (docs/dra.md): GPU pods in these namespaces (comma list; '' for "
            "none) and pods selecting hami.io/dra=true nodes get ResourceClaimTemplates"
        ),
    ] = None,
    scheduler_name: Annotated[str | None, typer.Option(help="overrides schedulerName")] = None,
    node_label_selector: Annotated[str | None, typer.Option(help="only these nodes")] = None,
    node_lock_timeout: Annotated[str, typer.Option(help="node lock expiry")] = "5m",
    bind_lock_wait: Annotated[str, typer.Option(help="/bind waits this for a lock")] = "25s",
    force_overwrite_default_scheduler: Annotated[
        bool,
        typer.Option(help="the webhook also moves pods naming default-scheduler to this scheduler"),
    ] = True,
    events: Annotated[bool, typer.Option(help="write Kubernetes Events")] = True,
    leader_elect: Annotated[bool, typer.Option(help="run as one of several replicas")] = False,
    lease_name: Annotated[
        str, typer.Option(help="Lease object the replicas elect a leader with")
    ] = "hami-scheduler",
    lease_namespace: Annotated[str, typer.Option(help="namespace of that Lease")] = "kube-system",
    identity: Annotated[str | None, typer.Option(help="lease holder identity")] = None,
    lease_duration: Annotated[str, typer.Option(help="lease duration")] = "10s",
    lease_retry_period: Annotated[
        str, typer.Option(help="a follower reads the Lease this often (a released one is taken)")
    ] = "500ms",
    reuse_port: Annotated[bool, typer.Option(help="share http-bind between replicas")] = False,
    shutdown_grace: Annotated[
        str, typer.Option(help="on SIGTERM, requests in flight get this long")
    ] = "15s",
    self_check_interval: Annotated[
        str, typer.Option(help="compare the cache with the pods' annotations this often (0: off)")
    ] = "30s",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Run the kube-scheduler extender (/filter, /bind) and the mutating webhook (/webhook)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        device_config = load_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if scheduler_name:
        device_config = dataclasses.replace(device_config, scheduler_name=scheduler_name)
    if (cert_file is None) != (key_file is None):
        raise typer.BadParameter("--cert-file and --key-file go together")
    if client_ca_file is not None and not extender_bind:
        raise typer.BadParameter(
            "--client-ca-file needs --extender-bind (the webhook's and probes' listener takes"
            " no client certificates)",
            param_hint="--client-ca-file",
        )
    if client_ca_file is not None and cert_file is None:
        raise typer.BadParameter("--client-ca-file needs --cert-file and --key-file (TLS)")
    for flag, address in (("--extender-bind", extender_bind),):
        if address:
            try:
                split_host_port(address)
            except ValueError:
                raise typer.BadParameter(
                    f"{address!r} is not host:port (e.g. :8444)", param_hint=flag
                ) from None
    if metrics_bind_address:
        try:
            split_host_port(metrics_bind_address)
        except ValueError:
            raise typer.BadParameter(
                f"{metrics_bind_address!r} is not host:port (e.g. :9395, 127.0.0.1:9395)",
                param_hint="--metrics-bind-address",
            ) from None
    settings = SchedulerSettings(
        config=device_config,
        http_bind=http_bind,
        cert_file=cert_file,
        key_file=key_file,
        kubeconfig=kubeconfig,
        force_overwrite_default_scheduler=force_overwrite_default_scheduler,
        node_label_selector=node_label_selector,
        node_lock_timeout=parse_duration(node_lock_timeout),
        bind_lock_wait=parse_duration(bind_lock_wait),
        events=events,
        leader_elect=leader_elect,
        lease_name=lease_name,
        lease_namespace=lease_namespace,
        identity=identity or default_identity(),
        lease_duration=parse_duration(lease_duration),
        lease_retry_period=parse_duration(lease_retry_period),
        reuse_port=reuse_port,
        shutdown_grace=parse_duration(shutdown_grace),
        self_check_interval=parse_duration(self_check_interval),
        metrics_bind=metrics_bind_address,
        extender_bind=extender_bind,
        client_ca_file=client_ca_file,
        kube_scheduler_client_cert=kube_scheduler_client_cert,
        max_body=max_body,
        header_timeout=parse_duration(header_timeout),
        body_timeout=parse_duration(body_timeout),
        max_in_flight=max_in_flight,
        simulation_max_nodes=simulation_max_nodes,
        cert_reload_interval=parse_duration(cert_reload_interval),
        decision_ttl=parse_duration(decision_ttl),
        dra_namespaces=None
        if dra_namespaces is None
        else tuple(n.strip() for n in dra_namespaces.split(",") if n.strip()),
    )
    try:
        run(settings)
    except (LeadershipLost, ListenError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
