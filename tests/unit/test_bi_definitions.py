"""The BI definitions over the marts (dashboards/definitions.py) and the QuickSight deploy's logic.

- The checked-in QuickSight JSON, Tableau .tds files and docs/analytics.md's mart reference are
  what the marts' YAML generates now (regenerate and compare), and a new mart column reaches all
  three.
- Every QuickSight request the deploy makes is checked against botocore's service model:
  ``validate_parameters`` (required members, types, unknown keys, minimums) and, stricter, the
  model's enums, patterns and maximums; a malformed definition fails here, not in an account.
- The create-or-update logic runs against a real boto3 client with botocore's Stubber in front:
  first run creates, second run updates, ResourceNotFoundException is the only "missing".
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError, ParamValidationError
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from dashboards import definitions, quicksight_deploy
from dashboards.definitions import (
    ANALYTICS_DOC,
    DOC_BEGIN,
    DOC_END,
    MARTS_DIR,
    QUICKSIGHT_DIR,
    ROOT,
    TABLEAU_DIR,
    DefinitionError,
    Field,
    Mart,
    Sheet,
    Visual,
    column_type,
    load_marts,
)
from dashboards.quicksight_deploy import (
    ANALYSIS,
    DASHBOARD,
    DATA_SET,
    DATA_SOURCE,
    QuickSightDeployError,
    Resource,
    deploy_quicksight,
    load_resources,
    permissions_request,
    update_request,
)

pytestmark = pytest.mark.unit

ACCOUNT = "111122223333"
REGION = "eu-west-1"
WORKGROUP = "analysts"
DATABASE = "musicsync_analytics"
PRINCIPAL = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/alice"

QS_TYPES = {
    "varchar": "STRING",
    "bigint": "INTEGER",
    "double": "DECIMAL",
    "boolean": "BOOLEAN",
    "date": "DATETIME",
    "timestamp": "DATETIME",
}
TABLEAU_TYPES = {
    "varchar": "string",
    "bigint": "integer",
    "double": "real",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "datetime",
}


@pytest.fixture(scope="module")
def marts() -> tuple[Mart, ...]:
    return load_marts()


SERVICE_MODEL = boto3.client("quicksight", region_name=REGION).meta.service_model


@pytest.fixture(scope="module")
def service_model() -> Any:
    return SERVICE_MODEL


def resources() -> list[Resource]:
    return load_resources(
        ACCOUNT,
        region=REGION,
        athena_workgroup=WORKGROUP,
        glue_database=DATABASE,
        principal_arn=PRINCIPAL,
    )


# -- the model's constraints botocore's validator leaves out --------------------------------------
def constraint_problems(value: Any, shape: Any, path: str) -> list[str]:
    """Enums, patterns and maximums of the service model that ``validate_parameters`` does not
    check (it checks required members, types, unknown keys, unions and minimums)."""
    problems: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        for key, item in value.items():
            if key in shape.members:
                problems += constraint_problems(item, shape.members[key], f"{path}.{key}")
    elif kind == "list":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items, at most {meta['max']}")
        for index, item in enumerate(value):
            problems += constraint_problems(item, shape.member, f"{path}[{index}]")
    elif kind == "map":
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} entries, at most {meta['max']}")
        for key, item in value.items():
            problems += constraint_problems(key, shape.key, f"{path}<key {key}>")
            problems += constraint_problems(item, shape.value, f"{path}.{key}")
    elif kind == "string":
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {meta['max']}")
        if "pattern" in meta:
            try:
                pattern = re.compile(meta["pattern"])
            except re.error:
                pattern = None  # a Java-only construct: not checked here
            if pattern is not None and not pattern.fullmatch(value):
                problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif kind in ("integer", "long", "double", "float") and "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} is above {meta['max']}")
    return problems


def check_request(service_model: Any, operation: str, params: dict[str, Any]) -> None:
    """Fails unless ``params`` is a valid ``operation`` request by the service model."""
    input_shape = service_model.operation_model(operation).input_shape
    validate_parameters(params, input_shape)
    problems = constraint_problems(params, input_shape, operation)
    assert not problems, "\n".join(problems)


# -- generated files ------------------------------------------------------------------------------
def test_checked_in_bi_files_and_docs_match_the_marts_yaml() -> None:
    # Given the marts' YAML as it is now, when everything is regenerated in memory
    stale = definitions.stale_files(ROOT)

    # Then every checked-in file is identical (and no leftover of a removed mart remains)
    assert not stale, (
        "stale generated files (run `python -m dashboards.definitions`): "
        + ", ".join(str(p) for p in stale)
    )


def copy_inputs(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / MARTS_DIR, root / MARTS_DIR)
    (root / ANALYTICS_DOC).parent.mkdir(parents=True)
    shutil.copy(ROOT / ANALYTICS_DOC, root / ANALYTICS_DOC)
    return root


def test_a_new_mart_column_shows_up_in_quicksight_tableau_and_the_docs(tmp_path: Path) -> None:
    # Given a copy of the marts' YAML with a new column on the track popularity mart
    root = copy_inputs(tmp_path)
    path = root / MARTS_DIR / "product" / "mart_track_popularity_daily.yml"
    path.write_text(
        path.read_text().replace(
            "      - name: dt\n",
            "      - name: avg_listened_ms_per_listener\n"
            "        description: Mean listening per listener, milliseconds.\n"
            "      - name: dt\n",
        )
    )

    # When the files are generated and written
    definitions.write(root)

    # Then the QuickSight data set has it, typed from its name
    data_set = json.loads(
        (root / QUICKSIGHT_DIR / "data_sets" / "mart_track_popularity_daily.json").read_text()
    )
    table = data_set["PhysicalTableMap"]["athena-table"]["RelationalTable"]
    assert {"Name": "avg_listened_ms_per_listener", "Type": "DECIMAL", "SubType": "FLOAT"} in (
        table["InputColumns"]
    )
    # ... the Tableau data source has it
    tds = ET.parse(root / TABLEAU_DIR / "mart_track_popularity_daily.tds").getroot()  # noqa: S314
    assert "avg_listened_ms_per_listener" in [e.text for e in tds.iter("remote-name")]
    # ... and the docs describe it
    doc = (root / ANALYTICS_DOC).read_text()
    assert (
        "| `avg_listened_ms_per_listener` | double | Mean listening per listener, milliseconds. |"
        in doc
    )
    # ... and the check finds nothing stale afterwards
    assert definitions.stale_files(root) == []


def test_files_no_mart_produces_any_more_are_stale_and_then_removed(tmp_path: Path) -> None:
    # Given generated files, then a mart's YAML removed (one no dashboard visual reads)
    root = copy_inputs(tmp_path)
    definitions.write(root)
    (root / MARTS_DIR / "catalog" / "dim_tracks.yml").unlink()

    # When checked, then its data set and .tds file are stale; writing removes them
    stale = definitions.stale_files(root)
    assert QUICKSIGHT_DIR / "data_sets" / "dim_tracks.json" in stale
    assert TABLEAU_DIR / "dim_tracks.tds" in stale
    definitions.write(root)
    assert not (root / TABLEAU_DIR / "dim_tracks.tds").exists()
    assert not (root / QUICKSIGHT_DIR / "data_sets" / "dim_tracks.json").exists()
    assert definitions.stale_files(root) == []


def test_generation_stops_on_a_visual_over_a_missing_mart(tmp_path: Path) -> None:
    root = copy_inputs(tmp_path)
    (root / MARTS_DIR / "product" / "mart_search_terms.yml").unlink()
    with pytest.raises(DefinitionError, match="no mart 'mart_search_terms'"):
        definitions.generated_files(root)


def test_column_types_come_from_data_type_then_from_the_name() -> None:
    assert column_type("dt") == "date"
    assert column_type("cohort_week") == "date"
    assert column_type("first_opened_at") == "timestamp"
    assert column_type("is_opened") == "boolean"
    assert column_type("shortlisted") == "boolean"
    assert column_type("shortlisted_tracks") == "bigint"
    assert column_type("pitch_owner_id") == "varchar"
    assert column_type("avg_latency_ms") == "double"
    assert column_type("seconds_sent_to_opened") == "double"
    assert column_type("dau_over_mau") == "double"
    assert column_type("bytes_stored") == "bigint"
    # dbt's data_type wins, in DuckDB's or Athena's spelling
    assert column_type("plays", "HUGEINT") == "bigint"
    assert column_type("shortlisted", "varchar") == "varchar"
    # a name that says nothing needs a data_type
    with pytest.raises(DefinitionError, match="give it a data_type"):
        column_type("region")
    assert column_type("region", "string") == "varchar"
    with pytest.raises(DefinitionError, match="not one the BI files handle"):
        column_type("payload", "map(varchar, varchar)")


def test_a_visual_must_name_columns_its_mart_has_with_a_fitting_type(
    marts: tuple[Mart, ...],
) -> None:
    def sheet(*fields: Field) -> Sheet:
        return Sheet(
            "s",
            "S",
            "",
            (Visual("v", "table", "mart_search_terms", "V", (fields[0],), fields[1:]),),
        )

    with pytest.raises(DefinitionError, match="has no column 'nope'"):
        definitions.definition(marts, (sheet(Field("category", "query"), Field("sum", "nope")),))
    with pytest.raises(DefinitionError, match="'query' is varchar, not usable as a sum"):
        definitions.definition(marts, (sheet(Field("date", "dt"), Field("sum", "query")),))
    with pytest.raises(DefinitionError, match=r"'query' in .* is not a number"):
        definitions.definition(
            marts,
            (sheet(Field("category", "query"), Field("calc", "x", expression="sum({query})")),),
        )


def test_tds_files_are_athena_data_sources_listing_every_mart_column(
    marts: tuple[Mart, ...],
) -> None:
    assert sorted(p.stem for p in (ROOT / TABLEAU_DIR).glob("*.tds")) == sorted(
        m.name for m in marts
    )
    for mart in marts:
        # Given the checked-in file, it parses as XML
        root = ET.parse(ROOT / TABLEAU_DIR / f"{mart.name}.tds").getroot()  # noqa: S314
        assert root.tag == "datasource"

        # Then it connects with Tableau's Athena connector to the mart's table
        (connection,) = root.findall(".//connection[@class='athena']")
        assert connection.get("server") == "athena.us-east-1.amazonaws.com"
        assert connection.get("port") == "443"
        assert connection.get("schema") == "musicsync_analytics"
        (relation,) = root.findall(".//relation")
        assert relation.get("table") == f"[musicsync_analytics].[{mart.name}]"
        assert relation.get("connection") == root.find(".//named-connection").get("name")  # type: ignore[union-attr]

        # ... and lists every column, in order, typed, described
        records = root.findall(".//metadata-record[@class='column']")
        assert [r.findtext("remote-name") for r in records] == [c.name for c in mart.columns]
        assert [r.findtext("local-type") for r in records] == [
            TABLEAU_TYPES[c.type] for c in mart.columns
        ]
        columns = {c.get("name"): c for c in root.findall("column")}
        assert list(columns) == [f"[{c.name}]" for c in mart.columns]
        for column in mart.columns:
            element = columns[f"[{column.name}]"]
            assert element.get("datatype") == TABLEAU_TYPES[column.type]
            assert element.findtext("desc/formatted-text/run") == (column.description or None)
        for name in mart.grain:
            assert columns[f"[{name}]"].get("role") == "dimension"


def test_tableau_files_can_be_preset_for_another_environment(marts: tuple[Mart, ...]) -> None:
    text = definitions.tds(
        marts[0], region="eu-west-1", schema="bi", s3_staging_dir="s3://results/tableau/"
    )
    document = ET.fromstring(text.split("\n", 2)[2])  # noqa: S314 (generated here)
    connection = document.find(".//connection[@class='athena']")
    assert connection is not None
    assert connection.attrib["server"] == "athena.eu-west-1.amazonaws.com"
    assert connection.attrib["schema"] == "bi"
    assert connection.attrib["warehouse"] == "s3://results/tableau/"


def test_quicksight_data_sets_are_the_marts_athena_tables_with_every_column(
    marts: tuple[Mart, ...],
) -> None:
    names = sorted(p.stem for p in (ROOT / QUICKSIGHT_DIR / "data_sets").glob("*.json"))
    assert names == sorted(m.name for m in marts)
    for mart in marts:
        request = json.loads(
            (ROOT / QUICKSIGHT_DIR / "data_sets" / f"{mart.name}.json").read_text()
        )
        assert request["ImportMode"] == "DIRECT_QUERY"
        (physical,) = request["PhysicalTableMap"].values()
        table = physical["RelationalTable"]
        assert (table["Catalog"], table["Schema"], table["Name"]) == (
            "AwsDataCatalog",
            "${GlueDatabase}",
            mart.name,
        )
        assert table["DataSourceArn"].endswith(":datasource/musicsync-athena")
        assert [(c["Name"], c["Type"]) for c in table["InputColumns"]] == [
            (c.name, QS_TYPES[c.type]) for c in mart.columns
        ]
        (logical,) = request["LogicalTableMap"].values()
        described = {
            t["TagColumnOperation"]["ColumnName"]: t["TagColumnOperation"]["Tags"][0][
                "ColumnDescription"
            ]["Text"]
            for t in logical["DataTransforms"]
        }
        assert described == {c.name: c.description for c in mart.columns if c.description}


FIELD_KINDS = {
    "CategoricalDimensionField",
    "NumericalDimensionField",
    "DateDimensionField",
    "NumericalMeasureField",
    "CategoricalMeasureField",
    "CalculatedMeasureField",
}


def collect_field_ids(value: Any, fields: list[str], sorts: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in FIELD_KINDS:
                fields.append(item["FieldId"])
            elif key == "FieldSort":
                sorts.append(item["FieldId"])
            collect_field_ids(item, fields, sorts)
    elif isinstance(value, list):
        for item in value:
            collect_field_ids(item, fields, sorts)


def test_the_analysis_and_dashboard_declare_every_data_set_and_lay_out_every_visual(
    marts: tuple[Mart, ...],
) -> None:
    for name in ("analysis.json", "dashboard.json"):
        request = json.loads((ROOT / QUICKSIGHT_DIR / name).read_text())
        declared = request["Definition"]["DataSetIdentifierDeclarations"]
        assert [d["Identifier"] for d in declared] == [m.name for m in marts]
        fields: list[str] = []
        sorts: list[str] = []
        for sheet in request["Definition"]["Sheets"]:
            visual_ids = [next(iter(v.values()))["VisualId"] for v in sheet["Visuals"]]
            (layout,) = sheet["Layouts"]
            elements = layout["Configuration"]["GridLayout"]["Elements"]
            assert [e["ElementId"] for e in elements] == visual_ids
            collect_field_ids(sheet, fields, sorts)
        # Field ids are unique in the definition, and every sort names one of them
        assert len(set(fields)) == len(fields)
        assert set(sorts) <= set(fields)
        assert len(request["Definition"]["Sheets"]) == 6


def test_docs_name_every_mart_its_grain_and_every_column(marts: tuple[Mart, ...]) -> None:
    doc = (ROOT / ANALYTICS_DOC).read_text()
    generated = doc[doc.index(DOC_BEGIN) : doc.index(DOC_END)]
    for mart in marts:
        assert f"### {mart.name}" in generated
        assert f"one row per `{', '.join(mart.grain)}`" in generated
        for column in mart.columns:
            assert f"| `{column.name}` | {column.type} |" in generated
    for needed in (
        "analytics/warehouse.duckdb",
        "musicsync analytics build",
        "musicsync_analytics",
        "S3 staging directory",
        "JDBC",
        "ODBC",
        "musicsync dashboards deploy-quicksight",
    ):
        assert needed in doc


# -- requests against the service model -----------------------------------------------------------
def test_every_request_the_deploy_can_make_is_valid_for_the_service_model(
    service_model: Any,
) -> None:
    planned = resources()
    assert [r.kind for r in planned[:1] + planned[-2:]] == [DATA_SOURCE, ANALYSIS, DASHBOARD]
    assert "${" not in json.dumps([r.request for r in planned])
    for resource in planned:
        check_request(service_model, resource.kind.describe, resource.key)
        check_request(service_model, resource.kind.create, resource.request)
        check_request(service_model, resource.kind.update, update_request(service_model, resource))
        check_request(service_model, resource.kind.permissions, permissions_request(resource))
    dashboard = planned[-1]
    check_request(service_model, "DescribeDashboard", {**dashboard.key, "VersionNumber": 2})
    check_request(
        service_model, "UpdateDashboardPublishedVersion", {**dashboard.key, "VersionNumber": 2}
    )
    # The analysis and the dashboard carry one definition, valid as both shapes
    assert planned[-2].request["Definition"] == dashboard.request["Definition"]


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        (lambda r: r.pop("ImportMode"), "Missing required parameter"),
        (lambda r: r.update(PhysicalTableMapp=r.pop("PhysicalTableMap")), "Unknown parameter"),
        (
            lambda r: r["PhysicalTableMap"]["athena-table"]["RelationalTable"]["InputColumns"][
                0
            ].update(Type="TEXT"),
            "is not one of",
        ),
        (
            lambda r: r.update(
                PhysicalTableMap={"athena_table": r["PhysicalTableMap"]["athena-table"]}
            ),
            "does not match",
        ),
        (
            lambda r: r["PhysicalTableMap"]["athena-table"]["RelationalTable"].update(
                InputColumns="x"
            ),
            "Invalid type",
        ),
    ],
)
def test_a_malformed_definition_fails_validation(
    service_model: Any, breakage: Any, error: str
) -> None:
    request = copy.deepcopy(next(r for r in resources() if r.kind is DATA_SET).request)
    breakage(request)
    with pytest.raises((ParamValidationError, AssertionError), match=error):
        check_request(service_model, "CreateDataSet", request)


def test_a_broken_visual_fails_validation_as_an_analysis(service_model: Any) -> None:
    request = copy.deepcopy(resources()[-2].request)
    visual = request["Definition"]["Sheets"][0]["Visuals"][0]["LineChartVisual"]
    visual["ChartConfiguration"]["FieldWells"]["LineChartAggregatedFieldWells"]["Values"][0][
        "NumericalMeasureField"
    ]["AggregationFunction"] = {"SimpleNumericalAggregation": "TOTAL"}
    with pytest.raises(AssertionError, match="'TOTAL' is not one of"):
        check_request(service_model, "CreateAnalysis", request)


def test_placeholders_and_account_ids_are_checked() -> None:
    with pytest.raises(QuickSightDeployError, match="12 digits"):
        load_resources(
            "1234", region=REGION, athena_workgroup="w", glue_database="d", principal_arn="p"
        )
    with pytest.raises(QuickSightDeployError, match="unknown placeholder"):
        quicksight_deploy._fill({"a": ["${Nope}"]}, {"AccountId": ACCOUNT})
    arns = {r.request.get("DataSourceArn") for r in resources()}
    assert arns == {None}
    request = json.dumps([r.request for r in resources()])
    assert f"arn:aws:quicksight:{REGION}:{ACCOUNT}:datasource/musicsync-athena" in request
    assert quicksight_deploy.partition_of("cn-north-1") == "aws-cn"


# -- the create-or-update logic with botocore's Stubber -------------------------------------------
@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber, list[tuple[str, dict[str, Any]]]]]:
    """A QuickSight client behind a Stubber, recording every call's operation and parameters."""
    client = boto3.client(
        "quicksight", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, copy.deepcopy(params)))

    client.meta.events.register("provide-client-params.quicksight", record)
    with Stubber(client) as stubber:
        yield client, stubber, calls
        stubber.assert_no_pending_responses()


def arn(resource: Resource) -> str:
    noun = {
        DATA_SOURCE: "datasource",
        DATA_SET: "dataset",
        ANALYSIS: "analysis",
        DASHBOARD: "dashboard",
    }
    return f"arn:aws:quicksight:{REGION}:{ACCOUNT}:{noun[resource.kind]}/{resource.resource_id}"


def described(resource: Resource, status: str, version: int = 1) -> dict[str, Any]:
    """What Describe<Kind> answers for an existing resource in ``status``."""
    base = {"Arn": arn(resource), resource.kind.id_key: resource.resource_id}
    if resource.kind is DATA_SOURCE:
        return {
            "DataSource": {**base, "Name": "n", "Type": "ATHENA", "Status": status},
            "Status": 200,
        }
    if resource.kind is DATA_SET:
        return {"DataSet": {**base, "Name": "n", "ImportMode": "DIRECT_QUERY"}, "Status": 200}
    if resource.kind is ANALYSIS:
        analysis: dict[str, Any] = {**base, "Name": "n", "Status": status}
        if status.endswith("FAILED"):
            analysis["Errors"] = [{"Type": "COLUMN_TYPE_MISMATCH", "Message": "plays"}]
        return {"Analysis": analysis, "Status": 200}
    version_info = {
        "VersionNumber": version,
        "Status": status,
        "Arn": f"{arn(resource)}/version/{version}",
    }
    return {"Dashboard": {**base, "Name": "n", "Version": version_info}, "Status": 200}


def changed(resource: Resource, verb: str, version: int) -> dict[str, Any]:
    """What Create<Kind> / Update<Kind> answers (``verb`` "Create" or "Update")."""
    response: dict[str, Any] = {
        "Arn": arn(resource),
        resource.kind.id_key: resource.resource_id,
        "Status": 200,
    }
    output = SERVICE_MODEL.operation_model(f"{verb}{resource.kind.noun}").output_shape.members
    for key, status in (("CreationStatus", "CREATION"), ("UpdateStatus", "UPDATE")):
        if key in output:
            response[key] = f"{status}_IN_PROGRESS"
    if resource.kind is DASHBOARD:
        response["VersionArn"] = f"{arn(resource)}/version/{version}"
    return response


def version_key(resource: Resource, version: int) -> dict[str, Any]:
    return (
        {**resource.key, "VersionNumber": version} if resource.kind is DASHBOARD else resource.key
    )


def expect_first_run(stubber: Stubber, planned: list[Resource]) -> None:
    for resource in planned:
        stubber.add_client_error(
            xform_name(resource.kind.describe),
            service_error_code="ResourceNotFoundException",
            service_message="not found",
            http_status_code=404,
            expected_params=resource.key,
        )
        stubber.add_response(
            xform_name(resource.kind.create), changed(resource, "Create", 1), resource.request
        )
        if resource.kind is not DATA_SET:
            stubber.add_response(
                xform_name(resource.kind.describe),
                described(resource, "CREATION_SUCCESSFUL"),
                version_key(resource, 1),
            )


def expect_second_run(stubber: Stubber, planned: list[Resource], service_model: Any) -> None:
    for resource in planned:
        stubber.add_response(
            xform_name(resource.kind.describe),
            described(resource, "CREATION_SUCCESSFUL"),
            resource.key,
        )
        stubber.add_response(
            xform_name(resource.kind.update),
            changed(resource, "Update", 2),
            update_request(service_model, resource),
        )
        stubber.add_response(
            xform_name(resource.kind.permissions),
            {"Status": 200, resource.kind.id_key: resource.resource_id},
            permissions_request(resource),
        )
        if resource.kind is not DATA_SET:
            stubber.add_response(
                xform_name(resource.kind.describe),
                described(resource, "UPDATE_SUCCESSFUL", 2),
                version_key(resource, 2),
            )
        if resource.kind is DASHBOARD:
            stubber.add_response(
                xform_name("UpdateDashboardPublishedVersion"),
                {"DashboardId": resource.resource_id, "DashboardArn": arn(resource), "Status": 200},
                {**resource.key, "VersionNumber": 2},
            )


def deploy(client: Any) -> quicksight_deploy.DeployResult:
    return deploy_quicksight(
        ACCOUNT,
        region=REGION,
        athena_workgroup=WORKGROUP,
        glue_database=DATABASE,
        principal_arn=PRINCIPAL,
        client=client,
    )


def test_first_run_creates_everything_and_second_run_updates_it(
    stubbed: tuple[Any, Stubber, list[tuple[str, dict[str, Any]]]], service_model: Any
) -> None:
    client, stubber, calls = stubbed
    planned = resources()

    # Given an account without the resources, when deployed
    expect_first_run(stubber, planned)
    first = deploy(client)

    # Then each was looked up, missing, created from its checked-in request, and waited for
    assert [r.action for r in first.resources] == ["created"] * len(planned)
    assert [r.resource_id for r in first.resources] == [r.resource_id for r in planned]
    assert first.resources[0].arn == arn(planned[0])
    stubber.assert_no_pending_responses()

    # Given they exist now, when deployed again
    expect_second_run(stubber, planned, service_model)
    second = deploy(client)

    # Then each was updated, its owner's permissions granted again, the new dashboard published
    assert [r.action for r in second.resources] == ["updated"] * len(planned)
    assert "0 created, 11 updated" in second.summary()
    assert (
        second.dashboard_url
        == f"https://{REGION}.quicksight.aws.amazon.com/sn/dashboards/musicsync-analytics"
    )

    # And every call made is valid for botocore's service model
    operations = {operation for operation, _ in calls}
    for noun in ("DataSource", "DataSet", "Analysis", "Dashboard"):
        for verb in ("Describe{}", "Create{}", "Update{}", "Update{}Permissions"):
            assert verb.format(noun) in operations
    assert "UpdateDashboardPublishedVersion" in operations
    for operation, params in calls:
        check_request(service_model, operation, params)


def test_only_resource_not_found_means_missing(
    stubbed: tuple[Any, Stubber, list[tuple[str, dict[str, Any]]]],
) -> None:
    client, stubber, _ = stubbed
    planned = resources()
    stubber.add_client_error(
        xform_name("DescribeDataSource"),
        service_error_code="AccessDeniedException",
        service_message="not allowed",
        http_status_code=403,
        expected_params=planned[0].key,
    )
    with pytest.raises(ClientError, match="AccessDeniedException"):
        deploy(client)  # and nothing was created: the Stubber had no create queued


def test_a_failed_creation_stops_the_deploy_with_quicksights_errors(
    stubbed: tuple[Any, Stubber, list[tuple[str, dict[str, Any]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber, _ = stubbed
    monkeypatch.setattr(quicksight_deploy, "POLL_SECONDS", 0.0)
    planned = resources()
    expect_first_run(stubber, planned[:-2])
    analysis = planned[-2]
    stubber.add_client_error(
        xform_name("DescribeAnalysis"),
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
    )
    stubber.add_response(
        xform_name("CreateAnalysis"), changed(analysis, "Create", 1), analysis.request
    )
    stubber.add_response(
        xform_name("DescribeAnalysis"), described(analysis, "CREATION_IN_PROGRESS"), analysis.key
    )
    stubber.add_response(
        xform_name("DescribeAnalysis"), described(analysis, "CREATION_FAILED"), analysis.key
    )

    with pytest.raises(
        QuickSightDeployError, match=r"analysis musicsync-analytics .*COLUMN_TYPE_MISMATCH"
    ):
        deploy(client)
