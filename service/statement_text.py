"""Print a statement as a table a person can read.

The same text comes from a zeep response (``call``) and from a verified
Statement file (``verify``): :func:`statement_view` turns the XML into the
attribute shape that zeep gives.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from lxml import etree

from service.namespaces import TNS

HEADERS = ("Hesabat ili/ayı", "Sərfiyyat, m³", "Faktura, AZN", "Ödənilib, AZN")


def format_response(response: Any) -> str:
    """Return the Status, the Message and, if present, the statement as text."""
    lines = [f"Status:  {response.Status}", f"Message: {response.Message}"]
    statement = getattr(response, "Statement", None)
    if statement is None:
        return "\n".join(lines)
    return "\n".join([*lines, "", format_statement(statement)])


def format_statement(statement: Any) -> str:
    """Return the statement (zeep object or :func:`statement_view`) as text."""
    sub = statement.Subscriber
    name = " ".join(part for part in (sub.LastName, sub.FirstName, sub.Patronymic) if part)
    services = [
        label
        for flag, label in (
            (sub.WaterSupply, "su təchizatı"),
            (sub.Wastewater, "tullantı sularının axıdılması"),
        )
        if flag
    ]
    lines = [
        f"Arayış № {statement.StatementNumber}   ({statement.IssuedAt.isoformat()})",
        f"Verən:            {statement.Issuer}",
        f"Abonent kodu:     {sub.Code}",
        f"Ad, soyad, ata adı: {name}",
        f"Ünvan:            {sub.Address}",
        f"Nəfər sayı:       {sub.PersonsCount}",
        f"Xidmət:           {', '.join(services) or '-'}",
        f"Sayğac:           {sub.MeterType}",
        "",
    ]
    rows = [
        (f"{p.Year}-{p.Month:02d}", str(p.ConsumptionM3), str(p.InvoicedAmount), str(p.PaidAmount))
        for p in (statement.Periods.Period if statement.Periods else [])
    ]
    totals = statement.Totals
    footer = (
        "Cəmi",
        str(totals.ConsumptionM3),
        str(totals.InvoicedAmount),
        str(totals.PaidAmount),
    )
    widths = [max(len(r[i]) for r in [HEADERS, *rows, footer]) for i in range(4)]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    lines += [fmt(HEADERS), rule, *(fmt(r) for r in rows), rule, fmt(footer)]
    lines.append(f"Valyuta: {statement.Currency}")
    return "\n".join(lines)


def statement_view(element: etree._Element) -> SimpleNamespace:
    """Return a Statement element as the attribute tree zeep would give."""

    def text(parent: etree._Element, name: str) -> str | None:
        return parent.findtext(f"{{{TNS}}}{name}")

    def child(parent: etree._Element, name: str) -> etree._Element:
        found = parent.find(f"{{{TNS}}}{name}")
        if found is None:
            raise ValueError(f"the statement has no {name}")
        return found

    def amounts(parent: etree._Element) -> dict[str, Decimal]:
        return {
            name: Decimal(text(parent, name) or "0")
            for name in ("ConsumptionM3", "InvoicedAmount", "PaidAmount")
        }

    sub = child(element, "Subscriber")
    periods = [
        SimpleNamespace(
            Year=int(text(p, "Year") or 0), Month=int(text(p, "Month") or 0), **amounts(p)
        )
        for p in child(element, "Periods").iterfind(f"{{{TNS}}}Period")
    ]
    return SimpleNamespace(
        StatementNumber=text(element, "StatementNumber"),
        IssuedAt=datetime.fromisoformat(text(element, "IssuedAt") or ""),
        Issuer=text(element, "Issuer"),
        Subscriber=SimpleNamespace(
            Code=text(sub, "Code"),
            LastName=text(sub, "LastName"),
            FirstName=text(sub, "FirstName"),
            Patronymic=text(sub, "Patronymic"),
            Address=text(sub, "Address"),
            PersonsCount=int(text(sub, "PersonsCount") or 0),
            WaterSupply=text(sub, "WaterSupply") == "true",
            Wastewater=text(sub, "Wastewater") == "true",
            MeterType=text(sub, "MeterType"),
        ),
        Periods=SimpleNamespace(Period=periods),
        Totals=SimpleNamespace(**amounts(child(element, "Totals"))),
        Currency=text(element, "Currency"),
    )
