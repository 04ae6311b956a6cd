"""Print a GetBillingStatement response as a table a person can read."""

from __future__ import annotations

from typing import Any

HEADERS = ("Hesabat ili/ayı", "Sərfiyyat, m³", "Faktura, AZN", "Ödənilib, AZN")


def format_response(response: Any) -> str:
    """Return the Status, the Message and, if present, the statement as text."""
    lines = [f"Status:  {response.Status}", f"Message: {response.Message}"]
    statement = getattr(response, "Statement", None)
    if statement is None:
        return "\n".join(lines)
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
    lines += [
        "",
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
