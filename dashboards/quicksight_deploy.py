"""Apply the QuickSight definitions (``dashboards/quicksight/*.json``) to an AWS account.

``deploy_quicksight`` is what ``musicsync dashboards deploy-quicksight`` runs. In order: the
Athena data source, one data set per mart, the analysis, the dashboard. Each is created or
updated, so a second run changes what changed and creates nothing twice:

1. ``Describe<Kind>``: ``ResourceNotFoundException`` means create it (``Create<Kind>``, the
   checked-in request with the account, region, workgroup, database and principal filled in);
2. otherwise ``Update<Kind>`` (the create request's fields the update takes) and
   ``Update<Kind>Permissions`` (grant the principal the owner's actions again);
3. wait until QuickSight reports the data source, analysis or dashboard version finished
   (``*_SUCCESSFUL``; ``*_FAILED`` raises ``QuickSightDeployError`` with QuickSight's errors);
4. an updated dashboard's new version is published (``UpdateDashboardPublishedVersion``).

The data sets are direct query over the marts' Athena tables: no SPICE ingestion, and the
numbers are Athena's (those of the dbt ``aws`` target) at every view.

Any other error (access denied, a definition QuickSight rejects) propagates as botocore's
``ClientError``, naming the operation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

QUICKSIGHT_DIR = Path(__file__).resolve().parent / "quicksight"

# Polling for QuickSight's asynchronous creations and updates.
POLL_SECONDS = 2.0
WAIT_SECONDS = 600.0


class QuickSightDeployError(Exception):
    """QuickSight could not create or update a resource; the message says which and why."""


@dataclass(frozen=True)
class Kind:
    """One kind of QuickSight resource and the operations that manage it."""

    label: str
    noun: str  # as in the operation names: DataSource, DataSet, Analysis, Dashboard
    id_key: str

    @property
    def describe(self) -> str:
        return f"Describe{self.noun}"

    @property
    def create(self) -> str:
        return f"Create{self.noun}"

    @property
    def update(self) -> str:
        return f"Update{self.noun}"

    @property
    def permissions(self) -> str:
        return f"Update{self.noun}Permissions"


DATA_SOURCE = Kind("data source", "DataSource", "DataSourceId")
DATA_SET = Kind("data set", "DataSet", "DataSetId")
ANALYSIS = Kind("analysis", "Analysis", "AnalysisId")
DASHBOARD = Kind("dashboard", "Dashboard", "DashboardId")


@dataclass(frozen=True)
class Resource:
    """A resource to apply: its kind and its ``Create*`` request, ready to send."""

    kind: Kind
    request: dict[str, Any]

    @property
    def resource_id(self) -> str:
        return str(self.request[self.kind.id_key])

    @property
    def key(self) -> dict[str, Any]:
        return {"AwsAccountId": self.request["AwsAccountId"], self.kind.id_key: self.resource_id}


@dataclass(frozen=True)
class AppliedResource:
    kind: str
    resource_id: str
    action: str  # "created" or "updated"
    arn: str


@dataclass(frozen=True)
class DeployResult:
    account_id: str
    region: str
    resources: tuple[AppliedResource, ...]

    @property
    def created(self) -> tuple[AppliedResource, ...]:
        return tuple(r for r in self.resources if r.action == "created")

    @property
    def updated(self) -> tuple[AppliedResource, ...]:
        return tuple(r for r in self.resources if r.action == "updated")

    @property
    def dashboard_url(self) -> str:
        dashboard = next(r for r in self.resources if r.kind == DASHBOARD.label)
        return (
            f"https://{self.region}.quicksight.aws.amazon.com/sn/dashboards/{dashboard.resource_id}"
        )

    def summary(self) -> str:
        lines = [f"{r.action:8} {r.kind:12} {r.resource_id}" for r in self.resources]
        lines.append(
            f"{len(self.created)} created, {len(self.updated)} updated in account "
            f"{self.account_id} ({self.region}); dashboard: {self.dashboard_url}"
        )
        return "\n".join(lines)


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        try:
            return Template(value).substitute(values)
        except (KeyError, ValueError) as error:
            raise QuickSightDeployError(f"unknown placeholder in {value!r}: {error}") from error
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def load_resources(
    account_id: str,
    *,
    region: str,
    athena_workgroup: str,
    glue_database: str,
    principal_arn: str,
    directory: Path = QUICKSIGHT_DIR,
) -> list[Resource]:
    """The checked-in definitions as requests for this account, in the order to apply them."""
    if not re.fullmatch(r"[0-9]{12}", account_id):
        raise QuickSightDeployError(f"account id {account_id!r} is not 12 digits")
    values = {
        "AccountId": account_id,
        "Region": region,
        "Partition": partition_of(region),
        "AthenaWorkgroup": athena_workgroup,
        "GlueDatabase": glue_database,
        "PrincipalArn": principal_arn,
    }

    def read(path: Path) -> dict[str, Any]:
        request: dict[str, Any] = _fill(json.loads(path.read_text(encoding="utf-8")), values)
        return request

    data_sets = sorted((directory / "data_sets").glob("*.json"))
    if not data_sets:
        raise QuickSightDeployError(f"no data set definitions in {directory / 'data_sets'}")
    return [
        Resource(DATA_SOURCE, read(directory / "data_source.json")),
        *(Resource(DATA_SET, read(path)) for path in data_sets),
        Resource(ANALYSIS, read(directory / "analysis.json")),
        Resource(DASHBOARD, read(directory / "dashboard.json")),
    ]


def update_request(service_model: Any, resource: Resource) -> dict[str, Any]:
    """``Update<Kind>``: the create request's fields the update operation takes."""
    members = service_model.operation_model(resource.kind.update).input_shape.members
    return {k: v for k, v in resource.request.items() if k in members}


def permissions_request(resource: Resource) -> dict[str, Any]:
    """``Update<Kind>Permissions``: grant the create request's permissions again."""
    return {**resource.key, "GrantPermissions": resource.request["Permissions"]}


class _Calls:
    """The client's operations by their API names (``CreateDataSet``, ...)."""

    def __init__(self, client: Any) -> None:
        from botocore import xform_name

        self._client = client
        self._xform: Callable[[str], str] = xform_name

    @property
    def service_model(self) -> Any:
        return self._client.meta.service_model

    def __call__(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        method = getattr(self._client, self._xform(operation))
        response: dict[str, Any] = method(**params)
        return response

    def exists(self, resource: Resource) -> bool:
        from botocore.exceptions import ClientError

        try:
            self(resource.kind.describe, resource.key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise
        return True


def _status(calls: _Calls, resource: Resource, version: int | None) -> tuple[str, Any]:
    kind = resource.kind
    if kind is DATA_SOURCE:
        source = calls(kind.describe, resource.key)["DataSource"]
        return str(source.get("Status", "")), source.get("ErrorInfo")
    if kind is ANALYSIS:
        analysis = calls(kind.describe, resource.key)["Analysis"]
        return str(analysis.get("Status", "")), analysis.get("Errors")
    params = dict(resource.key)
    if version is not None:
        params["VersionNumber"] = version
    dashboard_version = calls(kind.describe, params)["Dashboard"].get("Version") or {}
    return str(dashboard_version.get("Status", "")), dashboard_version.get("Errors")


def _wait(calls: _Calls, resource: Resource, version: int | None = None) -> None:
    """Until QuickSight finishes creating or updating the resource (data sets are at once)."""
    if resource.kind is DATA_SET:
        return
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        status, errors = _status(calls, resource, version)
        if status.endswith("_SUCCESSFUL"):
            return
        if status.endswith("_FAILED"):
            raise QuickSightDeployError(
                f"QuickSight could not apply {resource.kind.label} {resource.resource_id} "
                f"({status}): {json.dumps(errors, default=str)}"
            )
        if time.monotonic() > deadline:
            raise QuickSightDeployError(
                f"{resource.kind.label} {resource.resource_id} still {status or 'pending'} "
                f"after {WAIT_SECONDS:.0f} s"
            )
        time.sleep(POLL_SECONDS)


def _version(version_arn: str | None) -> int | None:
    match = re.search(r"/version/(\d+)$", version_arn or "")
    return int(match.group(1)) if match else None


def apply_resource(calls: _Calls, resource: Resource) -> AppliedResource:
    """Create or update one resource, wait for it, publish a dashboard's new version."""
    kind = resource.kind
    if not calls.exists(resource):
        response = calls(kind.create, resource.request)
        action = "created"
    else:
        response = calls(kind.update, update_request(calls.service_model, resource))
        calls(kind.permissions, permissions_request(resource))
        action = "updated"
    version = _version(response.get("VersionArn")) if kind is DASHBOARD else None
    _wait(calls, resource, version)
    if kind is DASHBOARD and action == "updated" and version is not None:
        calls("UpdateDashboardPublishedVersion", {**resource.key, "VersionNumber": version})
    return AppliedResource(kind.label, resource.resource_id, action, str(response.get("Arn", "")))


def deploy_quicksight(
    account_id: str,
    *,
    region: str,
    athena_workgroup: str,
    glue_database: str,
    principal_arn: str,
    endpoint_url: str | None = None,
    client: Any = None,
) -> DeployResult:
    """Create or update the QuickSight data source, data sets, analysis and dashboard.

    ``glue_database`` is the Athena (Glue) database holding the marts: the dbt ``aws`` target's
    schema, ``MUSICSYNC_ATHENA_SCHEMA`` (``musicsync_analytics`` by default).
    ``athena_workgroup`` is the workgroup QuickSight's queries run in (its result location).
    ``principal_arn`` is the QuickSight user or group that owns everything
    (``arn:aws:quicksight:<region>:<account>:user/default/<name>``). ``client`` is a boto3
    QuickSight client to use instead of one made for ``region`` and ``endpoint_url``.
    """
    resources = load_resources(
        account_id,
        region=region,
        athena_workgroup=athena_workgroup,
        glue_database=glue_database,
        principal_arn=principal_arn,
    )
    if client is None:
        import boto3

        client = boto3.client("quicksight", region_name=region, endpoint_url=endpoint_url)
    calls = _Calls(client)
    applied = tuple(apply_resource(calls, resource) for resource in resources)
    return DeployResult(account_id, region, applied)
