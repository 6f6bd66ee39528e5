"""What on-call staff read: summaries in French and English, and the Grafana link.

Pure functions of the alert's facts, so that every receiver says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from charter_contracts import AlertStatus, IndicatorName, WindowName

INDICATOR_FR: dict[IndicatorName, str] = {
    "opening_rate": "taux d'ouverture",
    "pickup_rate": "taux de décroché",
    "deadline_compliance": "respect des délais de traitement",
}
INDICATOR_EN: dict[IndicatorName, str] = {
    "opening_rate": "opening rate",
    "pickup_rate": "pickup rate",
    "deadline_compliance": "deadline compliance",
}
#: Names of the measures other than the indicator's own value (see rules.Measure).
MEASURE_FR = {"sites_reporting": "part des sites prévus ouverts qui envoient leur statut"}
MEASURE_EN = {"sites_reporting": "share of sites scheduled open that send their status"}
WINDOW_FR: dict[WindowName, str] = {
    "live": "en ce moment",
    "15m": "15 min",
    "1h": "1 h",
    "today": "aujourd'hui",
    "7d": "7 jours",
    "hour": "heure",
    "day": "jour",
}
WINDOW_EN: dict[WindowName, str] = {
    "live": "now",
    "15m": "15 min",
    "1h": "1 h",
    "today": "today",
    "7d": "7 days",
    "hour": "hour",
    "day": "day",
}


def pct_fr(value: float | None) -> str:
    """0.737 -> ``73,7 %`` (French typography: decimal comma, space before %)."""
    return "n/d" if value is None else f"{value * 100:.1f}".replace(".", ",") + "\u00a0%"


def pct_en(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def where(network: str, department: str | None) -> str:
    return network if department is None else f"{network} ({department})"


@dataclass(frozen=True)
class Links:
    """Where the boards are: Grafana's base URL and the uid of the network board."""

    grafana_url: str = "http://127.0.0.1:3000"
    dashboard_uid: str = "charter-network"

    def board(self, network: str, department: str | None, since: datetime, at: datetime, status: AlertStatus) -> str:
        """The network board, filtered on the alert's place, showing the hour before the breach."""
        query: dict[str, str] = {"var-network": network}
        if department is not None:
            query["var-department"] = department
        query["from"] = str(_ms(since - timedelta(hours=1)))
        query["to"] = str(_ms(at + timedelta(hours=1))) if status == "resolved" else "now"
        return f"{self.grafana_url.rstrip('/')}/d/{self.dashboard_uid}?{urlencode(query)}"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True)
class Facts:
    """Everything a summary states."""

    status: AlertStatus
    indicator: IndicatorName
    network: str
    department: str | None
    window: WindowName
    value: float | None
    threshold: float
    since: datetime
    short_window: WindowName | None = None
    short_value: float | None = None
    factor: float | None = None
    objective: float | None = None
    measure: str = "value"


def summary_fr(f: Facts) -> str:
    place = where(f.network, f.department)
    name = MEASURE_FR.get(f.measure) or INDICATOR_FR[f.indicator]
    depuis = f"depuis le {when(f.since)}"
    if f.factor is not None and f.short_window is not None:
        windows = f"{WINDOW_FR[f.window]} : {pct_fr(f.value)}, {WINDOW_FR[f.short_window]} : {pct_fr(f.short_value)}"
        objective = pct_fr(f.objective)
        if f.status == "resolved":
            return f"{place} : {name} — le budget d'erreur ne brûle plus {f.factor:g}× trop vite ({windows}) ; résolu."
        return (
            f"{place} : {name} — budget d'erreur consommé {f.factor:g}× trop vite ({windows} ; "
            f"objectif {objective}, seuil d'alerte {pct_fr(f.threshold)}) {depuis}."
        )
    window = WINDOW_FR[f.window]
    if f.status == "resolved":
        return (
            f"{place} : {name} ({window}) revenu à {pct_fr(f.value)}, au-dessus du seuil de "
            f"{pct_fr(f.threshold)} ; alerte ouverte {depuis}."
        )
    verb = "sous le seuil" if f.status == "firing" else "passé sous le seuil (en attente)"
    return f"{place} : {name} ({window}) à {pct_fr(f.value)}, {verb} de {pct_fr(f.threshold)} {depuis}."


def summary_en(f: Facts) -> str:
    place = where(f.network, f.department)
    name = MEASURE_EN.get(f.measure) or INDICATOR_EN[f.indicator]
    since = f"since {when(f.since)}"
    if f.factor is not None and f.short_window is not None:
        windows = f"{WINDOW_EN[f.window]}: {pct_en(f.value)}, {WINDOW_EN[f.short_window]}: {pct_en(f.short_value)}"
        if f.status == "resolved":
            return f"{place}: {name} no longer burns its error budget {f.factor:g}x too fast ({windows}); resolved."
        return (
            f"{place}: {name} burns its error budget {f.factor:g}x too fast ({windows}; objective "
            f"{pct_en(f.objective)}, alert below {pct_en(f.threshold)}) {since}."
        )
    window = WINDOW_EN[f.window]
    if f.status == "resolved":
        return (
            f"{place}: {name} ({window}) back to {pct_en(f.value)}, above the {pct_en(f.threshold)} threshold; "
            f"alert open {since}."
        )
    state = "below" if f.status == "firing" else "fell below (pending)"
    return f"{place}: {name} ({window}) at {pct_en(f.value)}, {state} the {pct_en(f.threshold)} threshold {since}."
