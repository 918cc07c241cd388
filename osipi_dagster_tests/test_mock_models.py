"""The mock's objects, fetched over HTTP, against the fields and ``Links`` keys of the published PI Web API
client models.

``MODELS`` is copied from the PI Web API 2018 SP1 swagger spec (v1.11.1.5383):
``pidevguru/PI-Web-API-Client-Generators`` ``src/GeneratorPIWebApiClient.Core/swagger.json`` at commit
77d9f479450884cba673f6c3c51487ca19b2e7c5, ``definitions.<Type>.properties`` and
``definitions.<Type>Links.properties``. The 2023 generation, ``pidevguru/PI-Web-API-Client-DotNet``
``src/PIDevGuru.PIWebApiClient/Models/PWA<Type>.cs`` at commit dd06c902f67de65856895573d4ad51d880e3bd0f, lists
the same names for every type here. Left out of every type: ``WebException`` (present only when an answer
failed while it was streamed) and the serializer switches ``SerializeId``, ``SerializeDescription``, ...

Two directions are checked: the mock emits no field or ``Links`` key that its model lacks (``EXTRA`` lists
the one exception), and every key of a model appears on some object the mock serves unless ``OMITTED`` says
why the mock cannot give it a truthful value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import pytest
import requests

from osipi_dagster.mock.server import RunningMock


class Model(NamedTuple):
    fields: frozenset[str]
    links: frozenset[str] = frozenset()


def _model(fields: str, links: str = "") -> Model:
    return Model(frozenset(fields.split()), frozenset(links.split()))


MODELS: dict[str, Model] = {
    "Landing": _model("Links", "AssetServers DataServers Search Self System"),
    "SystemLanding": _model(
        "Links ProductTitle ProductVersion",
        "CacheInstances Configuration Self Status UserInfo Versions",
    ),
    "SystemStatus": _model("CacheInstances ServerTime State UpTimeInMinutes"),
    "UserInfo": _model("IdentityType ImpersonationLevel IsAuthenticated Name SID"),
    "Version": _model("Build FullVersion MajorMinorRevision"),
    "DataServer": _model(
        "Id IsConnected Links Name Path ServerTime ServerVersion WebId",
        "EnumerationSets Points Self",
    ),
    "Point": _model(
        """
        Descriptor DigitalSetName DisplayDigits EngineeringUnits Future Id Links Name Path PointClass
        PointType Span Step WebId Zero
        """,
        "Attributes DataServer EndValue InterpolatedData PlotData RecordedData Self SummaryData Value",
    ),
    "PointAttribute": _model("Links Name Value", "Point Self"),
    "Item[Point]": _model("Exception Identifier IdentifierType Object"),
    "EnumerationSet": _model(
        "Description Id Links Name Path WebId",
        "DataServer Database Security SecurityEntries Self Values",
    ),
    "EnumerationValue": _model(
        "Description Id Links Name Parent Path Value WebId",
        "EnumerationSet Parent Self",
    ),
    "AssetServer": _model(
        "Description ExtendedProperties Id IsConnected Links Name Path ServerTime ServerVersion WebId",
        """
        AnalysisRulePlugIns Databases NotificationContactTemplates NotificationPlugIns Security
        SecurityEntries SecurityIdentities SecurityMappings Self TimeRulePlugIns UnitClasses
        """,
    ),
    "AssetDatabase": _model(
        "Description ExtendedProperties Id Links Name Path WebId",
        """
        AnalysisCategories AnalysisTemplates AssetServer AttributeCategories ElementCategories
        ElementTemplates Elements EnumerationSets EventFrames Security SecurityEntries Self
        TableCategories Tables
        """,
    ),
    "Element": _model(
        """
        CategoryNames Description Errors ExtendedProperties HasChildren Id Links Name Path Paths
        TemplateName WebId
        """,
        """
        Analyses Attributes Categories Database DefaultAttribute Elements EndValue EventFrames
        InterpolatedData NotificationRules Parent PlotData RecordedData Security SecurityEntries Self
        SummaryData Template Value
        """,
    ),
    "ElementTemplate": _model(
        """
        AllowElementToExtend BaseTemplate CanBeAcknowledged CategoryNames Description ExtendedProperties
        Id InstanceType Links Name NamingPattern Path Severity WebId
        """,
        """
        AnalysisTemplates AttributeTemplates BaseTemplate BaseTemplates Categories Database
        DefaultAttribute DerivedTemplates NotificationRuleTemplates Security SecurityEntries Self
        """,
    ),
    "ElementCategory": _model(
        "Description Id Links Name Path WebId",
        "Database Security SecurityEntries Self",
    ),
    "Attribute": _model(
        """
        CategoryNames ConfigString DataReference DataReferencePlugIn DefaultUnitsName
        DefaultUnitsNameAbbreviation Description DisplayDigits HasChildren Id IsConfigurationItem
        IsExcluded IsHidden IsManualDataEntry Links Name Path Paths Span Step TraitName Type
        TypeQualifier WebId Zero
        """,
        """
        Attributes Categories Element EndValue EnumerationSet EnumerationValues EventFrame
        InterpolatedData Parent PlotData Point RecordedData Self SummaryData Template Trait Value
        """,
    ),
    "AttributeTemplate": _model(
        """
        CategoryNames ConfigString DataReferencePlugIn DefaultUnitsName DefaultUnitsNameAbbreviation
        DefaultValue Description HasChildren Id IsConfigurationItem IsExcluded IsHidden
        IsManualDataEntry Links Name Path TraitName Type TypeQualifier WebId
        """,
        "AttributeTemplates Categories ElementTemplate Parent Self Trait",
    ),
    "EventFrame": _model(
        """
        AcknowledgedBy AcknowledgedDate AreValuesCaptured CanBeAcknowledged CategoryNames Description
        EndTime ExtendedProperties HasChildren Id IsAcknowledged IsAnnotated IsLocked Links Name Path
        RefElementWebIds Security Severity StartTime TemplateName WebId
        """,
        """
        Annotations Attributes Categories Database DefaultAttribute EndValue EventFrames
        InterpolatedData Parent PlotData PrimaryReferencedElement RecordedData ReferencedElements
        Security SecurityEntries Self SummaryData Template Value
        """,
    ),
    "NotificationRule": _model(
        """
        AutoCreated CategoryNames Criteria Description Id MultiTriggerEventOption Name
        NonrepetitionInterval Path ResendInterval Status TemplateName WebId
        """,
        "Self",  # no NotificationRuleLinks in either generation: see EXTRA
    ),
    "NotificationRuleSubscriber": _model(
        """
        ConfigString ContactTemplateName ContactType DeliveryFormatName Description EscalationTimeout Id
        MaximumRetries Name NotifyOption Path PlugInName RetryInterval WebId
        """,
        "Self",
    ),
    "Security": _model(
        """
        CanAnnotate CanDelete CanExecute CanRead CanReadData CanSubscribe CanSubscribeOthers CanWrite
        CanWriteData HasAdmin Rights
        """,
    ),
    "Items": _model("Items Links"),  # every Items[...] collection; its Links are PaginationLinks
    "TimedValues": _model("Items UnitsAbbreviation"),  # ExtendedTimedValues has the same two
    "TimedValue": _model("Annotated Errors Good Questionable Substituted Timestamp UnitsAbbreviation Value"),
    "SummaryValue": _model("Type Value"),
    "StreamValues": _model("Items Links Name Path UnitsAbbreviation WebId", "Source"),
    "StreamValue": _model("Links Name Path Value WebId", "Source"),
    "StreamSummaries": _model("Items Links Name Path WebId", "Source"),
    "Response": _model("Content Headers Status"),
}
PAGINATION_LINKS = frozenset({"First", "Last", "Next", "Previous"})

# Keys the mock emits beyond its model: the reference's recorded example (piwebapi.md 3.1) shows an empty
# "Links" at the top of /streams/{webId}/recorded|interpolated|plot, which the swagger TimedValues lacks; the
# swagger models of notification rules and their subscribers have no Links either, while the AVEVA reference
# samples (NotificationRule Get, Element GetNotificationRules, GetNotificationRuleSubscribers) show
# "Links": {"Self": ...} on each.
EXTRA: dict[str, frozenset[str]] = {
    "TimedValues": frozenset({"Links"}),
    "NotificationRule": frozenset({"Links"}),
    "NotificationRuleSubscriber": frozenset({"Links"}),
}

_SECURITY_LINKS = {"Security", "SecurityEntries"}  # security is not simulated: everyone may do everything
# Model keys the mock leaves out, because it cannot give them a truthful value.
OMITTED: dict[str, Model] = {
    "EnumerationSet": Model(frozenset(), frozenset({"Database", *_SECURITY_LINKS})),  # a data server's sets
    "EnumerationValue": Model(frozenset(), frozenset({"Parent"})),  # a digital state has no parent value
    "AssetServer": Model(  # plug-ins, notifications, units of measure and security are not simulated
        frozenset(),
        frozenset(
            {
                "AnalysisRulePlugIns",
                "NotificationContactTemplates",
                "NotificationPlugIns",
                "SecurityIdentities",
            }
            | {"SecurityMappings", "TimeRulePlugIns", "UnitClasses", *_SECURITY_LINKS}
        ),
    ),
    # analyses, attribute categories, AF enumeration sets and tables are not simulated
    "AssetDatabase": Model(
        frozenset(),
        frozenset(
            {"AnalysisCategories", "AnalysisTemplates", "AttributeCategories", "EnumerationSets"}
            | {"TableCategories", "Tables", *_SECURITY_LINKS}
        ),
    ),
    "Element": Model(  # Errors: only for an element that failed to load; no analyses, default attributes
        frozenset({"Errors"}),
        frozenset({"Analyses", "DefaultAttribute", *_SECURITY_LINKS}),
    ),
    "ElementTemplate": Model(
        frozenset(),
        frozenset({"AnalysisTemplates", "DefaultAttribute", "NotificationRuleTemplates", *_SECURITY_LINKS}),
    ),
    "ElementCategory": Model(frozenset(), frozenset(_SECURITY_LINKS)),
    # associations=DataReference, attribute categories and attribute traits are not simulated
    "Attribute": Model(frozenset({"DataReference"}), frozenset({"Categories", "Trait"})),
    "AttributeTemplate": Model(frozenset(), frozenset({"Categories", "Trait"})),
    "EventFrame": Model(frozenset(), frozenset({"Annotations", "DefaultAttribute", *_SECURITY_LINKS})),
    "Item[Point]": Model(frozenset()),
}


def _get(url: str, **params: Any) -> Any:
    answer = requests.get(url, params=params, timeout=60)
    assert answer.status_code in (200, 207), (url, params, answer.text[:300])
    return answer.json()


class Samples:
    """Objects the mock served, by the model they should follow."""

    def __init__(self) -> None:
        self.by_model: dict[str, list[dict]] = defaultdict(list)

    def one(self, model: str, body: dict) -> dict:
        self.by_model[model].append(body)
        return body

    def items(self, model: str, url: str, **params: Any) -> list[dict]:
        """The items of a collection answer, each recorded as ``model`` (the envelope as ``Items``)."""
        body = self.one("Items", _get(url, **params))
        for item in body["Items"]:
            self.one(model, item)
        return body["Items"]


def _asset_framework(samples: Samples, landing: dict) -> None:
    server = samples.items("AssetServer", landing["Links"]["AssetServers"])[0]
    database = samples.items("AssetDatabase", server["Links"]["Databases"])[0]
    every = {"searchFullHierarchy": "true", "maxCount": 1000}
    elements = samples.items("Element", database["Links"]["Elements"], associations="Paths", **every)
    samples.items("ElementCategory", database["Links"]["ElementCategories"])
    for template in samples.items("ElementTemplate", database["Links"]["ElementTemplates"]):
        samples.items("AttributeTemplate", template["Links"]["AttributeTemplates"], showDescendants="true")
    one_per_template = {e["TemplateName"]: e for e in elements if not e["HasChildren"]}
    for element in one_per_template.values():
        samples.items("Attribute", element["Links"]["Attributes"], associations="Paths", **every)
    for element in elements:
        for rule in samples.items("NotificationRule", element["Links"]["NotificationRules"]):
            samples.items(
                "NotificationRuleSubscriber", rule["Links"]["Self"] + "/notificationrulesubscribers"
            )
    frames = samples.items("EventFrame", database["Links"]["EventFrames"], startTime="*-2d", **every)
    for frame in frames[:30]:
        samples.one("Security", frame["Security"])
        samples.items("Attribute", frame["Links"]["Attributes"])


def _streams(samples: Samples, mock: RunningMock, points: list[dict]) -> None:
    webs = [p["WebId"] for p in points[:3]]
    for link in ("RecordedData", "InterpolatedData", "PlotData"):
        body = samples.one("TimedValues", _get(points[0]["Links"][link], startTime="*-1h"))
        for value in body["Items"]:
            samples.one("TimedValue", value)
    samples.one("TimedValue", _get(points[0]["Links"]["Value"]))
    samples.one("TimedValue", _get(points[0]["Links"]["EndValue"]))
    for summary in samples.items("SummaryValue", points[0]["Links"]["SummaryData"], summaryType="All"):
        samples.one("TimedValue", summary["Value"])
    for action in ("recorded", "interpolated", "plot"):
        samples.items("StreamValues", f"{mock.api}/streamsets/{action}", webId=webs, startTime="*-10m")
    for action in ("value", "end"):
        samples.items("StreamValue", f"{mock.api}/streamsets/{action}", webId=webs)
    digital = next(p["WebId"] for p in points if p["PointType"] == "Digital")  # its Average carries Errors
    summaries = f"{mock.api}/streamsets/summary"
    for streams in samples.items("StreamSummaries", summaries, webId=[*webs, digital], summaryType="All"):
        for summary in streams["Items"]:
            samples.one("TimedValue", samples.one("SummaryValue", summary)["Value"])
    batch = requests.post(
        f"{mock.api}/batch",
        json={"a": {"Method": "GET", "Resource": points[0]["Links"]["Self"]}},
        headers={"X-Requested-With": "test"},
        timeout=60,
    )
    samples.one("Response", batch.json()["a"])


@pytest.fixture(scope="module")
def samples(mock_pi: RunningMock) -> Samples:
    found = Samples()
    landing = found.one("Landing", _get(mock_pi.api))
    system = found.one("SystemLanding", _get(landing["Links"]["System"]))
    found.one("SystemStatus", _get(system["Links"]["Status"]))
    found.one("UserInfo", _get(system["Links"]["UserInfo"]))
    for version in _get(system["Links"]["Versions"]).values():
        found.one("Version", version)
    assert found.items("CacheInstance", system["Links"]["CacheInstances"]) == []
    server = found.items("DataServer", landing["Links"]["DataServers"])[0]
    found.one("DataServer", _get(server["Links"]["Self"]))
    points = found.items("Point", server["Links"]["Points"], maxCount=20)
    found.items("PointAttribute", points[0]["Links"]["Attributes"])
    found.items(
        "Item[Point]", f"{mock_pi.api}/points/multiple", webId=points[0]["WebId"], path="\\\\PIMOCK\\x"
    )
    for enum_set in found.items("EnumerationSet", server["Links"]["EnumerationSets"]):
        for value in found.items("EnumerationValue", enum_set["Links"]["Values"]):
            found.one("EnumerationValue", _get(value["Links"]["Self"]))
    _asset_framework(found, landing)
    _streams(found, mock_pi, points)
    return found


@pytest.mark.parametrize("model", sorted(MODELS))
def test_no_key_beyond_the_model(samples: Samples, model: str) -> None:
    """Every field and ``Links`` key the mock emits is one the published model has."""
    expected, extra = MODELS[model], EXTRA.get(model, frozenset())
    objects = samples.by_model[model]
    assert objects, f"no {model} was sampled"
    for body in objects:
        assert set(body) - expected.fields - extra == set(), (model, body.get("Path") or body.get("Name"))
        links = set(body.get("Links") or {})
        allowed = PAGINATION_LINKS if model == "Items" else expected.links
        assert links - allowed == set(), (model, body.get("Path") or body.get("Name"))


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_key_of_the_model_is_served(samples: Samples, model: str) -> None:
    """Every field and ``Links`` key of the model appears on some object of that kind, unless OMITTED says
    why the mock leaves it out."""
    expected, omitted = MODELS[model], OMITTED.get(model, Model(frozenset()))
    seen = set().union(*map(set, samples.by_model[model]))
    seen_links = set().union(*(set(body.get("Links") or {}) for body in samples.by_model[model]))
    assert expected.fields - omitted.fields - seen == set(), model
    assert expected.links - omitted.links - seen_links == set(), model
    assert omitted.fields <= expected.fields and omitted.links <= expected.links, "OMITTED names no model key"


def test_enumeration_sets_link_their_values_and_values_are_objects(mock_pi: RunningMock) -> None:
    """A set links its values as ``Links.Values``; each value has ``Links.Self`` and a WebID 2.0 (marker
    ``MV``, owner ``D``), and is readable by WebID of every type and by path."""
    server = _get(mock_pi.api + "/dataservers")["Items"][0]
    modes = next(s for s in _get(server["Links"]["EnumerationSets"])["Items"] if s["Name"] == "Modes")
    assert "EnumerationValues" not in modes["Links"]
    values = _get(modes["Links"]["Values"])["Items"]
    auto = next(v for v in values if v["Name"] == "Auto")
    assert auto["WebId"].startswith("F1MVD") and auto["Path"] == "\\\\PIMOCK\\EnumerationSets[Modes]\\Auto"
    assert auto["Parent"] == "" and "Parent" not in auto["Links"]
    assert auto["Links"]["EnumerationSet"] == modes["Links"]["Self"]
    assert _get(auto["Links"]["Self"]) == auto
    assert _get(mock_pi.api + "/enumerationvalues", path=auto["Path"]) == auto
    for kind in ("IDOnly", "PathOnly", "LocalIDOnly", "DefaultIDOnly"):
        web = _get(auto["Links"]["Self"], webIdType=kind)["WebId"]
        assert _get(f"{mock_pi.api}/enumerationvalues/{web}")["Id"] == auto["Id"], kind
    assert requests.get(f"{mock_pi.api}/enumerationvalues/garbage", timeout=30).status_code == 400
    assert requests.get(f"{mock_pi.api}/enumerationvalues/{modes['WebId']}", timeout=30).status_code == 400
    missing = _get(mock_pi.api + "/enumerationvalues", path=auto["Path"], webIdType="IDOnly")["WebId"]
    gone = missing[:-22] + "A" * 22  # a value GUID the set does not hold
    assert requests.get(f"{mock_pi.api}/enumerationvalues/{gone}", timeout=30).status_code == 404


def test_digital_point_attributes_link_their_enumeration_set(mock_pi: RunningMock) -> None:
    """An EnumerationValue attribute over a digital point links the set its TypeQualifier names."""
    element = _get(
        mock_pi.api + "/elements", path="\\\\AFMOCK\\Operations\\MockChem\\Plant1\\Area1\\Unit01\\FIC0101"
    )
    mode = next(a for a in _get(element["Links"]["Attributes"])["Items"] if a["Type"] == "EnumerationValue")
    enum_set = _get(mode["Links"]["EnumerationSet"])
    assert enum_set["Name"] == mode["TypeQualifier"] == "Modes"
    assert mode["Links"]["EnumerationValues"] == enum_set["Links"]["Values"]
    flow = next(a for a in _get(element["Links"]["Attributes"])["Items"] if a["Type"] == "Single")
    assert "EnumerationSet" not in flow["Links"]


def test_template_and_category_links_are_served(mock_pi: RunningMock) -> None:
    """The links added from the models answer: template categories, base and derived templates, child
    attribute templates, event frame categories, cache instances."""
    database = _get(mock_pi.api + "/assetdatabases", path="\\\\AFMOCK\\Operations")
    templates = {t["Name"]: t for t in _get(database["Links"]["ElementTemplates"])["Items"]}
    pump = templates["Centrifugal Pump"]
    bases = [t["Name"] for t in _get(pump["Links"]["BaseTemplates"])["Items"]]
    assert bases == ["Pump", "Rotating Equipment", "Equipment"]
    equipment = templates["Equipment"]["Links"]["DerivedTemplates"]
    direct = {t["Name"] for t in _get(equipment)["Items"]}
    assert direct == {"Rotating Equipment", "Valve", "Instrument"}
    assert "Centrifugal Pump" in {t["Name"] for t in _get(equipment, showDescendants="true")["Items"]}
    assert [c["Name"] for c in _get(pump["Links"]["Categories"])["Items"]] == ["Rotating Equipment"]
    inherited = _get(templates["Batch Unit"]["Links"]["Categories"], showInherited="true")["Items"]
    assert [c["Name"] for c in inherited] == ["Process Unit", "Batch"]
    capacity = next(
        a for a in _get(pump["Links"]["AttributeTemplates"])["Items"] if a["Name"] == "Rated Capacity"
    )
    children = _get(capacity["Links"]["AttributeTemplates"])["Items"]
    assert [c["Name"] for c in children] == ["Minimum", "Maximum"]
    assert all(c["Links"]["Parent"] == capacity["Links"]["Self"] for c in children)
    frame = _get(database["Links"]["EventFrames"], startTime="*-1d")["Items"][0]
    categories = [c["Name"] for c in _get(frame["Links"]["Categories"])["Items"]]
    assert categories == frame["CategoryNames"]
