"""The AF template catalogue and naming tables of the mock's asset model: the element templates (with
inheritance), their attribute specifications, and the tables that name equipment, sites and point
attributes. Pure data and the two functions that read it; the model that places it is ``af.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from osipi_dagster.mock.model import Point


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute a template gives its elements or event frames (a static one unless ``point``)."""

    name: str
    type: str  # Double | Int32 | String | Boolean | DateTime
    units: str = ""
    categories: tuple[str, ...] = ()
    choices: tuple[object, ...] = ()  # the value is one of these, picked by the owner's hash ...
    bounds: tuple[float, float] = (0.0, 0.0)  # ... or a number in this range
    hidden: bool = False
    optional: bool = False  # excluded (IsExcluded) on about half of the owners
    trait: str = ""  # a limit trait of a child attribute (Minimum, Maximum, ...)
    scale: float = 0.0  # a child attribute's value is its parent's value times this
    point: bool = False  # a "PI Point" data reference chosen per owner (event frame attributes)
    children: tuple[AttributeSpec, ...] = ()


@dataclass(frozen=True)
class TemplateSpec:
    """An element or event-frame template before it is placed in a database."""

    name: str
    description: str
    base: str = ""
    categories: tuple[str, ...] = ()
    attributes: tuple[AttributeSpec, ...] = ()
    instance_type: str = "Element"  # Element | EventFrame
    severity: str = "None"
    can_be_acknowledged: bool = False
    naming_pattern: str = "%TEMPLATE%"
    abbreviation: str = ""  # the tag prefix of equipment names (P-10104)


def _capacity(units: str, low: float, high: float) -> AttributeSpec:
    """``Rated Capacity`` with its limit children; each template that has one has its own units."""
    limits = ("Limits",)
    return AttributeSpec(
        "Rated Capacity",
        "Double",
        units,
        ("Nameplate",),
        bounds=(low, high),
        children=(
            AttributeSpec("Minimum", "Double", units, limits, trait="Minimum", scale=0.1),
            AttributeSpec("Maximum", "Double", units, limits, trait="Maximum", scale=1.1),
        ),
    )


def _equipment(name: str, base: str, category: str, *attributes: AttributeSpec) -> TemplateSpec:
    return TemplateSpec(name, f"A {name.lower()}", base, (category,), attributes)


_NAMEPLATE = ("Nameplate",)
_INSTRUMENT = "Instrument"
ELEMENT_TEMPLATES: tuple[TemplateSpec, ...] = (
    TemplateSpec(
        "Enterprise",
        "A company: the root of a database's hierarchy",
        categories=("Organization",),
        attributes=(
            AttributeSpec("Headquarters", "String", categories=_NAMEPLATE, choices=("Houston, US",)),
        ),
    ),
    TemplateSpec(
        "Site",
        "A production site",
        categories=("Organization", "Site"),
        attributes=(
            AttributeSpec("Country", "String", categories=("Location",)),
            AttributeSpec("Latitude", "Double", "°", ("Location",)),
            AttributeSpec("Longitude", "Double", "°", ("Location",)),
        ),
    ),
    TemplateSpec(
        "Area",
        "A plant area",
        categories=("Organization",),
        attributes=(
            AttributeSpec("Area Manager", "String", categories=_NAMEPLATE, choices=("J. Smith", "A. Novak")),
        ),
    ),
    TemplateSpec(
        "Process Unit",
        "A process unit",
        categories=("Process Unit",),
        attributes=(AttributeSpec("Design Throughput", "Double", "t/d", _NAMEPLATE, bounds=(200, 5000)),),
    ),
    TemplateSpec("Batch Unit", "A batch process unit", "Process Unit", ("Process Unit", "Batch")),
    TemplateSpec("Continuous Unit", "A continuous unit", "Process Unit", ("Process Unit", "Continuous")),
    TemplateSpec(
        "Equipment",
        "Base template of all equipment",
        categories=("Equipment",),
        attributes=(
            AttributeSpec(
                "Manufacturer", "String", categories=_NAMEPLATE, choices=("Sulzer", "Siemens", "ABB")
            ),
            AttributeSpec("Model", "String", categories=_NAMEPLATE, choices=("MX-200", "HP-45", "CPT 40")),
            AttributeSpec("Install Year", "Int32", "", _NAMEPLATE, bounds=(1985, 2024)),
            AttributeSpec("Asset ID", "String", categories=_NAMEPLATE, hidden=True),
            AttributeSpec(
                "Warranty Expiry", "String", categories=_NAMEPLATE, choices=("2026-06-30",), optional=True
            ),
        ),
    ),
    _equipment("Rotating Equipment", "Equipment", "Rotating Equipment"),
    _equipment("Pump", "Rotating Equipment", "Rotating Equipment"),
    _equipment("Centrifugal Pump", "Pump", "Rotating Equipment", _capacity("m3/h", 20, 800)),
    _equipment("Valve", "Equipment", "Static Equipment"),
    _equipment("On-Off Valve", "Valve", "Static Equipment", _capacity("m3/h", 20, 800)),
    _equipment(_INSTRUMENT, "Equipment", _INSTRUMENT),
    _equipment("Flow Controller", _INSTRUMENT, _INSTRUMENT, _capacity("m3/h", 50, 500)),
    _equipment("Flow Totalizer", _INSTRUMENT, _INSTRUMENT),
    _equipment("Transmitter", _INSTRUMENT, _INSTRUMENT),
    _equipment("Temperature Transmitter", "Transmitter", _INSTRUMENT, _capacity("°C", 100, 600)),
    _equipment("Pressure Transmitter", "Transmitter", _INSTRUMENT, _capacity("bar", 10, 100)),
    _equipment("Level Transmitter", "Transmitter", _INSTRUMENT),
    _equipment("Analyzer", "Transmitter", _INSTRUMENT),
    _equipment("Batch Tracker", _INSTRUMENT, _INSTRUMENT),
    _equipment("Forecast Model", _INSTRUMENT, _INSTRUMENT),
)
EXTRA_CATEGORIES = ("Critical",)  # given to about one equipment in ten, from no template
# The equipment template of a loop, from the letters its name starts with.
LOOP_TEMPLATES = {
    "P": "Centrifugal Pump", "XV": "On-Off Valve", "FIC": "Flow Controller", "FQ": "Flow Totalizer",
    "TI": "Temperature Transmitter", "PI": "Pressure Transmitter", "LI": "Level Transmitter",
    "AI": "Analyzer", "BATCH": "Batch Tracker", "FC": "Forecast Model",
}  # fmt: skip
UNIT_KINDS = {
    "Batch Unit": ("Batch Reactor", "Blending Unit"),
    "Continuous Unit": ("Hydrotreater", "Boiler House"),
}
SITES: tuple[tuple[str, str, float, float], ...] = (
    ("Houston", "United States", 29.76, -95.37),
    ("Rotterdam", "Netherlands", 51.92, 4.48),
    ("Singapore", "Singapore", 1.29, 103.85),
    ("Ludwigshafen", "Germany", 49.48, 8.44),
    ("Jubail", "Saudi Arabia", 27.01, 49.66),
)
DATABASE_NAMES = ("Operations", "Europe", "Americas", "Asia Pacific", "Middle East")
ENTERPRISE = "MockChem"
UNASSIGNED = "Unassigned"

POINT_ATTRIBUTE_TYPES = {
    "Float16": "Single", "Float32": "Single", "Float64": "Double", "Int16": "Int16", "Int32": "Int32",
    "Digital": "EnumerationValue", "String": "String", "Timestamp": "DateTime", "Blob": "Blob",
}  # fmt: skip
# What a point measures, from its engineering units (lower case); the attribute is named after it.
_MEASURES = {
    "degc": "Temperature", "°c": "Temperature", "deg. c": "Temperature", "degf": "Temperature",
    "°f": "Temperature", "k": "Temperature", "bar": "Pressure", "barg": "Pressure", "kpa": "Pressure",
    "mpa": "Pressure", "psi": "Pressure", "psig": "Pressure", "pa": "Pressure", "mbar": "Pressure",
    "m3/h": "Flow", "kg/h": "Flow", "t/h": "Flow", "l/min": "Flow", "m3/d": "Flow", "kg/s": "Flow",
    "%": "Level", "m": "Level", "mm": "Position", "rpm": "Speed", "hz": "Frequency", "a": "Current",
    "v": "Voltage", "kv": "Voltage", "kw": "Power", "mw": "Power", "kwh": "Energy", "mwh": "Energy",
    "mm/s": "Vibration", "um": "Vibration", "ph": "pH", "ppm": "Concentration", "mg/l": "Concentration",
    "us/cm": "Conductivity", "kg/m3": "Density", "cp": "Viscosity", "kg": "Weight", "t": "Weight",
    "s": "Duration", "h": "Running Hours",
}  # fmt: skip
_MEASURES_BY_TYPE = {"Digital": "Status", "String": "Message", "Int32": "Count", "Int16": "Count"}
UNIT_NAMES = {
    "°": "degree", "m3/h": "cubic meter per hour", "kW": "kilowatt", "m3": "cubic meter",
    "t/h": "tonne per hour", "t/d": "tonne per day", "kg": "kilogram", "degC": "degree Celsius",
    "°C": "degree Celsius", "bar": "bar", "barg": "bar gauge", "kPa": "kilopascal", "%": "percent",
    "rpm": "revolutions per minute", "A": "ampere", "V": "volt", "MW": "megawatt",
    "mm/s": "millimeter per second", "h": "hour", "s": "second", "min": "minute",
}  # fmt: skip


def hashed_value(spec: AttributeSpec, draw: int) -> object:
    """A static attribute's value: one of its choices, or a number within its bounds."""
    if spec.choices:
        return spec.choices[draw % len(spec.choices)]
    low, high = spec.bounds
    if spec.type == "Int32":
        return int(low) + draw % (int(high) - int(low) + 1)
    if spec.type == "String":
        return ""
    return round(low + (high - low) * (draw % 10_000) / 10_000, 1)


def attribute_name(point: Point) -> str:
    """A point's attribute name: its descriptor up to the first comma, else what its units measure."""
    described = point.descriptor.split(",")[0].strip()
    return (
        described
        or _MEASURES.get(point.units.strip().lower())
        or _MEASURES_BY_TYPE.get(point.point_type, "Value")
    )
