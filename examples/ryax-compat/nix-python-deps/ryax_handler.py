"""Dates -> a plain-text table. `dateutil` and `tabulate` are declared in ryax_metadata.yaml as
Nix packages (pythonPackages.tabulate, python3Packages.dateutil), as published Ryax actions do:
the build installs them from PyPI, in the same pip run as requirements.txt."""

from typing import Any

from dateutil import parser
from tabulate import tabulate


def handle(request: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for given in (part.strip() for part in str(request["dates"]).split(";")):
        if given:
            day = parser.parse(given)
            rows.append((given, day.date().isoformat(), day.strftime("%A")))
    return {"table": tabulate(rows, headers=["given", "date", "weekday"])}
