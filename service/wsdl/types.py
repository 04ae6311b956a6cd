"""Spyne types of the contract (document/literal wrapped, target namespace TNS).

They mirror ``service/schemas/statement.xsd``; a test checks that every Statement the
service sends validates against that schema.
"""

from __future__ import annotations

from spyne import Boolean, ComplexModel, DateTime, Decimal, Enum, Integer, Unicode, XmlAttribute

from service.namespaces import TNS

StatusCode = Enum(
    "OK",
    "SUBSCRIBER_CODE_EMPTY",
    "SUBSCRIBER_CODE_INVALID",
    "SUBSCRIBER_NOT_FOUND",
    "NOT_RESIDENTIAL",
    "FIN_INVALID",
    "FIN_MISMATCH",
    type_name="StatusCode",
)
LanguageCode = Enum("az", "en", "ru", type_name="LanguageCode")
MeterTypeCode = Enum("MECHANICAL", "SMART_CARD", "NONE", type_name="MeterType")
CurrencyCode = Enum("AZN", type_name="Currency")

# Money always has two decimals ("8.40"): the values are quantized before
# Spyne writes them with str(Decimal), which keeps trailing zeros.  Spyne can't
# put a pattern on a decimal; service/schemas/statement.xsd has the stricter rule.
Money = Decimal(fraction_digits=2)
Volume = Decimal(ge=0, fraction_digits=3)


class Subscriber(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("Code", Unicode(min_occurs=1, nillable=False)),
        ("LastName", Unicode(min_occurs=1, nillable=False)),
        ("FirstName", Unicode(min_occurs=1, nillable=False)),
        ("Patronymic", Unicode(min_occurs=0, nillable=False)),
        ("Address", Unicode(min_occurs=1, nillable=False)),
        ("PersonsCount", Integer(min_occurs=1, nillable=False, ge=0)),
        ("WaterSupply", Boolean(min_occurs=1, nillable=False)),
        ("Wastewater", Boolean(min_occurs=1, nillable=False)),
        ("MeterType", MeterTypeCode.customize(min_occurs=1, nillable=False)),
    ]


class Period(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("Year", Integer(min_occurs=1, nillable=False, ge=1900, le=2999)),
        ("Month", Integer(min_occurs=1, nillable=False, ge=1, le=12)),
        ("ConsumptionM3", Volume.customize(min_occurs=1, nillable=False)),
        ("InvoicedAmount", Money.customize(min_occurs=1, nillable=False)),
        ("PaidAmount", Money.customize(min_occurs=1, nillable=False)),
    ]


class Periods(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("Period", Period.customize(min_occurs=0, max_occurs=12, nillable=False)),
    ]


class Totals(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("ConsumptionM3", Volume.customize(min_occurs=1, nillable=False)),
        ("InvoicedAmount", Money.customize(min_occurs=1, nillable=False)),
        ("PaidAmount", Money.customize(min_occurs=1, nillable=False)),
    ]


class Statement(ComplexModel):
    __namespace__ = TNS
    _type_info = [
        ("Id", XmlAttribute(Unicode(min_occurs=1))),
        ("StatementNumber", Unicode(min_occurs=1, nillable=False)),
        ("IssuedAt", DateTime(min_occurs=1, nillable=False)),
        ("Issuer", Unicode(min_occurs=1, nillable=False)),
        ("Subscriber", Subscriber.customize(min_occurs=1, nillable=False)),
        ("Periods", Periods.customize(min_occurs=1, nillable=False)),
        ("Totals", Totals.customize(min_occurs=1, nillable=False)),
        ("Currency", CurrencyCode.customize(min_occurs=1, nillable=False)),
    ]


#: The response's parts, in order: (name, type).
RESPONSE_PARTS = (
    ("Status", StatusCode.customize(min_occurs=1, nillable=False)),
    ("Message", Unicode(min_occurs=1, nillable=False)),
    ("Statement", Statement.customize(min_occurs=0, nillable=False)),
)
#: The request's parts, in order.  CitizenFin may be absent (an X-Road userId
#: can carry the citizen's identity instead); an absent FIN is FIN_INVALID.
REQUEST_PARTS = (
    ("SubscriberCode", Unicode(min_occurs=1, nillable=False)),
    ("CitizenFin", Unicode(min_occurs=0, nillable=False)),
    ("Language", LanguageCode.customize(min_occurs=0, nillable=False)),
)
