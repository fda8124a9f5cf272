"""`kyb server`'s audit flags, named as kube-apiserver names them.

`audit_flags` adds the options to a command without widening its signature (their values
go to the click context); `auditor_from_flags` turns them into the server's `Auditor`,
refusing a bad policy or webhook file before anything starts. Audit is on by default:
kyb's default policy (api/audit.py) into `<data-dir>/audit.log`; `--audit-log-path ""`
without a webhook turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

_KEY = "audit_flags"


def _keep(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        ctx.meta.setdefault(_KEY, {})[name] = value

    return store


_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--audit-policy-file",), dict(
        default=None, metavar="PATH",
        help="audit.k8s.io/v1 Policy: which requests are logged at which level [default: writes at Metadata, "
             "no reads, never a Secret's or ConfigMap's body].")),
    (("--audit-log-path",), dict(
        default=None, metavar="PATH",
        help='Audit events as JSON lines here ("-": stdout; "": no log file) [default: <data-dir>/audit.log].')),
    (("--audit-log-maxsize",), dict(
        default=100, show_default=True, type=click.IntRange(min=0),
        help="Megabytes an audit log file reaches before it is rotated (0: never).")),
    (("--audit-log-maxbackup",), dict(
        default=10, show_default=True, type=click.IntRange(min=0),
        help="Rotated audit log files kept (0: all).")),
    (("--audit-log-maxage",), dict(
        default=0, show_default=True, type=click.IntRange(min=0),
        help="Days a rotated audit log file is kept (0: no limit).")),
    (("--audit-log-batch-buffer-size",), dict(
        default=10000, show_default=True, type=click.IntRange(min=1),
        help="Events waiting for the disk before new ones are dropped (and counted).")),
    (("--audit-webhook-config-file",), dict(
        default=None, metavar="PATH",
        help="kubeconfig-format file of a server that receives audit events as EventList batches.")),
    (("--audit-webhook-batch-max-size",), dict(
        default=400, show_default=True, type=click.IntRange(min=1),
        help="Events in one webhook batch at most.")),
    (("--audit-webhook-batch-max-wait",), dict(
        default="30s", show_default=True, metavar="DURATION",
        help="How long a webhook batch waits to fill before it is sent (e.g. 1s, 500ms).")),
    (("--audit-webhook-batch-buffer-size",), dict(
        default=10000, show_default=True, type=click.IntRange(min=1),
        help="Events waiting for the webhook before new ones are dropped (and counted).")),
    (("--audit-webhook-initial-backoff",), dict(
        default="10s", show_default=True, metavar="DURATION",
        help="Wait before retrying a failed webhook batch (growing 1.5x per retry).")),
]


def audit_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    for names, kw in reversed(_OPTIONS):
        name = names[0][2:].replace("-", "_")
        f = click.option(*names, expose_value=False, callback=_keep(name), **kw)(f)
    return f


def _seconds(text: str, flag: str) -> float:
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    t = text.strip()
    for unit, scale in units:
        if t.endswith(unit) and not (unit == "s" and t.endswith("ms")):
            try:
                return float(t[:-len(unit)]) * scale
            except ValueError:
                break
    try:
        return float(t)
    except ValueError:
        raise click.BadParameter(f"not a duration: {text!r} (e.g. 30s, 500ms, 1m)", param_hint=flag) from None


def auditor_from_flags(ctx: click.Context, data_dir: str) -> Any:
    """The server's Auditor from the flags (None: auditing off); exits on a bad file."""
    from kybernetes.api.audit import PolicyError
    from kybernetes.apiserver.audit import AuditOptions, build_auditor

    flags: dict[str, Any] = ctx.meta.get(_KEY, {})
    log_path = flags.get("audit_log_path")
    if log_path is None:
        log_path = os.path.join(os.path.abspath(data_dir), "audit.log")
    options = AuditOptions(
        policy_file=flags.get("audit_policy_file"), log_path=log_path,
        log_maxsize=flags.get("audit_log_maxsize", 100), log_maxbackup=flags.get("audit_log_maxbackup", 10),
        log_maxage=flags.get("audit_log_maxage", 0), log_buffer_size=flags.get("audit_log_batch_buffer_size", 10000),
        webhook_config_file=flags.get("audit_webhook_config_file"),
        webhook_batch_max_size=flags.get("audit_webhook_batch_max_size", 400),
        webhook_batch_max_wait=_seconds(flags.get("audit_webhook_batch_max_wait", "30s"),
                                        "--audit-webhook-batch-max-wait"),
        webhook_batch_buffer_size=flags.get("audit_webhook_batch_buffer_size", 10000),
        webhook_initial_backoff=_seconds(flags.get("audit_webhook_initial_backoff", "10s"),
                                         "--audit-webhook-initial-backoff"))
    try:
        return build_auditor(options)
    except (PolicyError, OSError, ValueError) as e:
        raise click.UsageError(f"audit: {e}") from None
