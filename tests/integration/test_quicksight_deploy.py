"""The QuickSight deploy against moto in server mode, and the BI column types against real marts.

What moto (5.2) implements of the QuickSight calls the deploy makes, in server mode:

- implemented: ``CreateDataSource``, ``DescribeDataSource``, ``UpdateDataSource``,
  ``CreateDataSet``, ``CreateDashboard``, ``DescribeDashboard``;
- missing (404 from the server, or 500 "not implemented" for ``UpdateDashboard``):
  ``DescribeDataSet``, ``UpdateDataSet``, ``UpdateDataSetPermissions``,
  ``UpdateDataSourcePermissions``, every analysis call (``CreateAnalysis``,
  ``DescribeAnalysis``, ``UpdateAnalysis``, ``UpdateAnalysisPermissions``), ``UpdateDashboard``,
  ``UpdateDashboardPermissions``, ``UpdateDashboardPublishedVersion``.

So the deploy runs over HTTP against moto for the calls it implements, and the missing ones are
answered in the client (botocore's ``before-call`` event, as the Stubber does) by a small fake
that keeps the state moto would. The create-or-update logic for every call, moto's or not, is
also covered with botocore's Stubber in ``tests/unit/test_bi_definitions.py``. The test warns
with the list of faked calls so the gap stays visible.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from dashboards.definitions import load_marts
from dashboards.quicksight_deploy import deploy_quicksight

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
# A region of its own: moto's QuickSight state lives per account and region for the session.
REGION = "ap-southeast-2"
DATABASE = "musicsync_analytics"
PRINCIPAL = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/analyst"

MOTO_LACKS = (
    "DescribeDataSet",
    "UpdateDataSet",
    "UpdateDataSetPermissions",
    "UpdateDataSourcePermissions",
    "CreateAnalysis",
    "DescribeAnalysis",
    "UpdateAnalysis",
    "UpdateAnalysisPermissions",
    "UpdateDashboard",
    "UpdateDashboardPermissions",
    "UpdateDashboardPublishedVersion",
)


class MotoGaps:
    """Answers, in the client, the QuickSight calls moto lacks; records which calls went where."""

    def __init__(self, client: Any) -> None:
        self.data_sets: dict[str, dict[str, Any]] = {}
        self.analyses: dict[str, dict[str, Any]] = {}
        self.dashboard_versions: dict[str, int] = {}
        self.faked: list[str] = []
        self.to_moto: list[str] = []
        events = client.meta.events
        for operation in MOTO_LACKS:
            events.register(f"before-call.quicksight.{operation}", self._answer)
        events.register("before-call.quicksight", self._note)
        events.register("after-call.quicksight.CreateDataSet", self._created_in_moto)

    def _note(self, model: Any, **_: Any) -> None:
        if model.name not in MOTO_LACKS:
            self.to_moto.append(model.name)

    def _created_in_moto(self, parsed: dict[str, Any], context: Any, **_: Any) -> None:
        params = context["fake_params"]
        self.data_sets[params["DataSetId"]] = {"Arn": parsed["Arn"], **params}

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, Any]:
        params = context["fake_params"]  # the call's parameters (the event's are serialised)
        self.faked.append(model.name)
        handler: Callable[[dict[str, Any]], dict[str, Any] | None] = getattr(self, model.name)
        body = handler(params)
        if body is None:
            error = {"Code": "ResourceNotFoundException", "Message": f"{model.name}: not found"}
            return AWSResponse("https://fake", 404, HTTPHeaders(), None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": 404},
            }
        return AWSResponse("https://fake", 200, HTTPHeaders(), None), {
            **body,
            "Status": 200,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    @staticmethod
    def _arn(kind: str, resource_id: str) -> str:
        return f"arn:aws:quicksight:{REGION}:{ACCOUNT}:{kind}/{resource_id}"

    # -- data sets (created in moto, seen through after-call) ----------------------------------
    def DescribeDataSet(self, params: dict[str, Any]) -> dict[str, Any] | None:
        data_set = self.data_sets.get(params["DataSetId"])
        if data_set is None:
            return None
        keys = ("Arn", "DataSetId", "Name", "PhysicalTableMap", "ImportMode")
        return {"DataSet": {k: data_set[k] for k in keys}}

    def UpdateDataSet(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if params["DataSetId"] not in self.data_sets:
            return None
        self.data_sets[params["DataSetId"]].update(params)
        return {"Arn": self.data_sets[params["DataSetId"]]["Arn"], "DataSetId": params["DataSetId"]}

    def UpdateDataSetPermissions(self, params: dict[str, Any]) -> dict[str, Any] | None:
        return {"DataSetId": params["DataSetId"]} if params["DataSetId"] in self.data_sets else None

    def UpdateDataSourcePermissions(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"DataSourceId": params["DataSourceId"]}

    # -- analyses ------------------------------------------------------------------------------
    def CreateAnalysis(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = self._arn("analysis", params["AnalysisId"])
        self.analyses[params["AnalysisId"]] = {
            **params,
            "Arn": arn,
            "Status": "CREATION_SUCCESSFUL",
        }
        return {
            "Arn": arn,
            "AnalysisId": params["AnalysisId"],
            "CreationStatus": "CREATION_IN_PROGRESS",
        }

    def DescribeAnalysis(self, params: dict[str, Any]) -> dict[str, Any] | None:
        analysis = self.analyses.get(params["AnalysisId"])
        if analysis is None:
            return None
        keys = ("Arn", "AnalysisId", "Name", "Status")
        return {"Analysis": {k: analysis[k] for k in keys}}

    def UpdateAnalysis(self, params: dict[str, Any]) -> dict[str, Any] | None:
        analysis = self.analyses.get(params["AnalysisId"])
        if analysis is None:
            return None
        analysis.update(params, Status="UPDATE_SUCCESSFUL")
        return {
            "Arn": analysis["Arn"],
            "AnalysisId": params["AnalysisId"],
            "UpdateStatus": "UPDATE_IN_PROGRESS",
        }

    def UpdateAnalysisPermissions(self, params: dict[str, Any]) -> dict[str, Any] | None:
        return (
            {"AnalysisId": params["AnalysisId"]} if params["AnalysisId"] in self.analyses else None
        )

    # -- dashboards (created in moto) ----------------------------------------------------------
    def UpdateDashboard(self, params: dict[str, Any]) -> dict[str, Any]:
        version = self.dashboard_versions.get(params["DashboardId"], 1) + 1
        self.dashboard_versions[params["DashboardId"]] = version
        arn = self._arn("dashboard", params["DashboardId"])
        return {
            "Arn": arn,
            "VersionArn": f"{arn}/version/{version}",
            "DashboardId": params["DashboardId"],
            "CreationStatus": "CREATION_IN_PROGRESS",
        }

    def UpdateDashboardPermissions(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"DashboardId": params["DashboardId"]}

    def UpdateDashboardPublishedVersion(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"DashboardId": params["DashboardId"]}


def keep_params(client: Any) -> None:
    """Let the after-call hook see a call's parameters (botocore passes the context along)."""

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fake_params"] = copy.deepcopy(params)

    client.meta.events.register("provide-client-params.quicksight", remember)


def test_deploy_creates_then_updates_against_moto(moto_endpoint: str) -> None:
    # Given a QuickSight client on moto, with moto's missing calls answered in the client
    client = boto3.client("quicksight", region_name=REGION, endpoint_url=moto_endpoint)
    keep_params(client)
    gaps = MotoGaps(client)
    marts = load_marts()

    # When deployed into an empty account
    first = deploy_quicksight(
        ACCOUNT,
        region=REGION,
        athena_workgroup="analysts",
        glue_database=DATABASE,
        principal_arn=PRINCIPAL,
        client=client,
    )

    # Then everything was created: 1 data source, a data set per mart, the analysis, the dashboard
    assert [(r.kind, r.action) for r in first.resources] == [
        ("data source", "created"),
        *[("data set", "created")] * len(marts),
        ("analysis", "created"),
        ("dashboard", "created"),
    ]
    # ... and moto holds the data source (Athena, the workgroup) and the dashboard
    (source,) = [
        s
        for s in client.list_data_sources(AwsAccountId=ACCOUNT)["DataSources"]
        if s["DataSourceId"] == "musicsync-athena"
    ]
    assert source["Type"] == "ATHENA"
    assert source["DataSourceParameters"] == {"AthenaParameters": {"WorkGroup": "analysts"}}
    dashboard = client.describe_dashboard(AwsAccountId=ACCOUNT, DashboardId="musicsync-analytics")
    assert dashboard["Dashboard"]["Name"] == "musicsync analytics"
    # ... and moto created every data set (CreateDataSet is moto's)
    assert sorted(gaps.data_sets) == sorted(f"musicsync-{m.name}" for m in marts)
    table = gaps.data_sets["musicsync-fct_pitch_funnel"]["PhysicalTableMap"]["athena-table"]
    assert table["RelationalTable"]["Schema"] == DATABASE
    assert table["RelationalTable"]["DataSourceArn"] == source["Arn"]

    # When deployed again, with another workgroup
    second = deploy_quicksight(
        ACCOUNT,
        region=REGION,
        athena_workgroup="analysts-v2",
        glue_database=DATABASE,
        principal_arn=PRINCIPAL,
        client=client,
    )

    # Then nothing was created twice: everything was updated, the data source in moto too
    assert {r.action for r in second.resources} == {"updated"}
    assert len(second.resources) == len(first.resources)
    described = client.describe_data_source(AwsAccountId=ACCOUNT, DataSourceId="musicsync-athena")
    assert described["DataSource"]["DataSourceParameters"]["AthenaParameters"]["WorkGroup"] == (
        "analysts-v2"
    )
    assert described["DataSource"]["Status"] == "UPDATE_SUCCESSFUL"
    assert len(client.list_dashboards(AwsAccountId=ACCOUNT)["DashboardSummaryList"]) == 1

    # And the calls moto implements went to moto
    assert {
        "CreateDataSource",
        "DescribeDataSource",
        "UpdateDataSource",
        "CreateDataSet",
        "CreateDashboard",
        "DescribeDashboard",
    } <= set(gaps.to_moto)
    faked = sorted(set(gaps.faked))
    assert set(faked) == set(MOTO_LACKS)
    warnings.warn(
        f"moto lacks these QuickSight calls; answered in the client here, and covered with "
        f"botocore's Stubber in tests/unit/test_bi_definitions.py: {', '.join(faked)}",
        UserWarning,
        stacklevel=1,
    )


# Types DuckDB gives the marts -> the Athena types the BI files declare.
DUCKDB_TYPES = {
    "VARCHAR": "varchar",
    "BIGINT": "bigint",
    "HUGEINT": "bigint",
    "INTEGER": "bigint",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}


def test_bi_column_types_match_the_marts_a_dbt_build_makes(data_dir: Path) -> None:
    # Given marts built by dbt from a seeded lake
    import duckdb

    from musicsync.analytics import build, warehouse_path
    from tests.support.lake_events import seeded_lake

    seeded_lake(data_dir, days=4, users=15)
    build(data_dir, check_quality=False)

    # Then each mart's YAML lists the table's columns, in order, with the types the QuickSight
    # data sets, the .tds files and the docs declare
    with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as con:
        for mart in load_marts():
            built = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'main' and table_name = ? order by ordinal_position",
                [mart.name],
            ).fetchall()
            assert [name for name, _ in built] == [c.name for c in mart.columns], mart.name
            assert [DUCKDB_TYPES.get(t, t) for _, t in built] == [c.type for c in mart.columns], (
                mart.name
            )
