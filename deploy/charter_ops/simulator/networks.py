"""The simulated networks and their site registry.

France services are the 2,845 real sites of the ANCT open data. The other networks
(CAF, CPAM, France Travail, DGFiP, CNAV, MSA, ANTS) are synthetic but plausible: a main
site at each department's prefecture and more sites in proportion to its population,
in real communes (taken from the France services file), with the opening hours such
networks publish, and their call centres registered as sites of their own. Volumes are
national orders of magnitude (SPEC section 6): about 100 million calls and several
hundred million case completions a year.

The registry does not depend on the traffic seed: every seed simulates the same sites.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from charter_contracts import Closure, Schedule, Site, WeeklyHours
from charter_contracts.sites import WEEKDAYS, department_timezone
from charter_ops.simulator.departments import DEPARTMENTS, Department
from charter_ops.sites import FRANCE_SERVICES_NETWORK, parse_day

CallRouting = Literal["departmental", "centres", "sites"]


@dataclass(frozen=True)
class Procedure:
    """A kind of case a network completes, with its deadline and usual processing time."""

    code: str
    deadline_days: int | None
    median_days: float
    spread: float  # sigma of the log-normal processing time
    share: float


@dataclass(frozen=True)
class NetworkProfile:
    """How one network is laid out and how much traffic it carries."""

    code: str
    label: str
    calls_per_year: float
    cases_per_year: float
    mean_wait_seconds: float
    sites_per_100k: float
    site_hours: tuple[tuple[str, ...], ...]  # schedule templates: 6 day strings, Monday..Saturday
    centre_hours: tuple[str, ...] = ()
    call_routing: CallRouting = "sites"
    centres: tuple[str, ...] = ()  # departments of the call centres, for routing "centres"
    back_offices: tuple[str, ...] = ()  # departments of back offices closed to the public
    procedures: tuple[Procedure, ...] = ()
    counters: tuple[int, int] = (2, 4)
    case_batch_seconds: int = 0  # 0: each case published when completed; else in batches
    month_start_boost: float = 0.0  # extra calls in the first ten days of a month


def _codes(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_WEEK = "08:30 - 12:00 / 13:30 - 16:30"
PROFILES: tuple[NetworkProfile, ...] = (
    NetworkProfile(
        code="caf",
        label="Caisses d'allocations familiales",
        calls_per_year=25e6,
        cases_per_year=120e6,
        mean_wait_seconds=22,
        sites_per_100k=0.45,
        site_hours=(
            (_WEEK,) * 5 + ("",),
            (_WEEK, _WEEK, "08:30 - 12:00", _WEEK, _WEEK, ""),
            ("09:00 - 12:30 / 13:30 - 16:00",) * 5 + ("",),
        ),
        centre_hours=("09:00 - 16:30",) * 5 + ("",),
        call_routing="departmental",
        procedures=(
            Procedure("rsa", 15, 5.5, 0.65, 0.25),
            Procedure("prime-activite", 15, 4.5, 0.7, 0.3),
            Procedure("aides-logement", 15, 6.0, 0.65, 0.25),
            Procedure("allocations-familiales", 15, 4.0, 0.7, 0.1),
            Procedure("changement-situation", 15, 6.5, 0.6, 0.1),
        ),
        counters=(3, 6),
        month_start_boost=0.25,
    ),
    NetworkProfile(
        code="cpam",
        label="Caisses primaires d'assurance maladie",
        calls_per_year=35e6,
        cases_per_year=150e6,
        mean_wait_seconds=18,
        sites_per_100k=0.9,
        site_hours=(
            ("08:30 - 12:30 / 13:30 - 16:30",) * 5 + ("",),
            ("08:30 - 12:30",) * 5 + ("",),
        ),
        centre_hours=("08:30 - 17:30",) * 5 + ("",),
        call_routing="departmental",
        procedures=(
            Procedure("remboursement-soins", 30, 9.0, 0.6, 0.55),
            Procedure("indemnites-journalieres", 30, 10.0, 0.6, 0.25),
            Procedure("complementaire-sante-solidaire", 60, 22.0, 0.55, 0.1),
            Procedure("carte-vitale", 15, 5.0, 0.6, 0.1),
        ),
        counters=(2, 5),
    ),
    NetworkProfile(
        code="france-travail",
        label="France Travail",
        calls_per_year=25e6,
        cases_per_year=20e6,
        mean_wait_seconds=25,
        sites_per_100k=1.35,
        site_hours=(
            ("08:30 - 12:30 / 13:30 - 16:30",) * 4 + ("08:30 - 12:30", ""),
            ("08:30 - 12:30",) * 5 + ("",),
        ),
        procedures=(
            Procedure("inscription", 10, 3.0, 0.6, 0.35),
            Procedure("ouverture-droits", 15, 6.0, 0.6, 0.45),
            Procedure("attestation-employeur", 15, 5.0, 0.7, 0.2),
        ),
        counters=(2, 4),
    ),
    NetworkProfile(
        code="dgfip",
        label="Finances publiques",
        calls_per_year=15e6,
        cases_per_year=30e6,
        mean_wait_seconds=24,
        sites_per_100k=0.8,
        site_hours=(
            ("08:30 - 12:00 / 13:30 - 16:00",) * 5 + ("",),
            ("08:30 - 12:00 / 13:30 - 16:00", "08:30 - 12:00", "08:30 - 12:00 / 13:30 - 16:00")
            + ("08:30 - 12:00",) * 2
            + ("",),
        ),
        centre_hours=("08:30 - 19:00",) * 5 + ("",),
        call_routing="centres",
        centres=("29", "69", "44", "31", "59", "33", "13", "67", "35", "974"),
        procedures=(
            Procedure("reclamation-impot", 30, 11.0, 0.55, 0.5),
            Procedure("remboursement-credit-tva", 30, 12.0, 0.5, 0.2),
            Procedure("delais-paiement", 30, 8.0, 0.6, 0.3),
        ),
        counters=(2, 4),
        case_batch_seconds=300,
    ),
    NetworkProfile(
        code="cnav",
        label="Assurance retraite",
        calls_per_year=6e6,
        cases_per_year=3e6,
        mean_wait_seconds=20,
        sites_per_100k=0.35,
        site_hours=(("08:30 - 12:00 / 13:30 - 16:30",) * 5 + ("",),),
        centre_hours=("08:00 - 17:00",) * 5 + ("",),
        call_routing="centres",
        centres=("75", "59", "67", "69", "13", "33", "31", "34", "44", "35", "45", "21", "87", "63", "76", "54"),
        procedures=(
            Procedure("demande-retraite", 120, 50.0, 0.45, 0.8),
            Procedure("reversion", 120, 55.0, 0.45, 0.2),
        ),
        counters=(2, 3),
        case_batch_seconds=300,
    ),
    NetworkProfile(
        code="msa",
        label="Mutualité sociale agricole",
        calls_per_year=3e6,
        cases_per_year=5e6,
        mean_wait_seconds=15,
        sites_per_100k=0.2,
        site_hours=(("08:30 - 12:00 / 13:30 - 17:00",) * 5 + ("",),),
        centre_hours=("08:30 - 17:30",) * 5 + ("",),
        call_routing="centres",
        centres=("35", "44", "49", "33", "31", "69", "21", "51", "59", "13", "63", "87"),
        procedures=(
            Procedure("prime-activite", 15, 5.0, 0.65, 0.5),
            Procedure("retraite-agricole", 120, 48.0, 0.45, 0.2),
            Procedure("remboursement-soins", 30, 9.0, 0.6, 0.3),
        ),
        counters=(1, 3),
    ),
    NetworkProfile(
        code="ants",
        label="Agence nationale des titres sécurisés",
        calls_per_year=8e6,
        cases_per_year=15e6,
        mean_wait_seconds=22,
        sites_per_100k=0.0,
        site_hours=(),
        centre_hours=("08:00 - 19:00",) * 5 + ("09:00 - 17:00",),
        call_routing="centres",
        centres=("08", "59", "87"),
        back_offices=_codes("13 33 59 69 75 31 44 67 35 34 06 76 63 21 45 86 57 971 974 972"),
        procedures=(
            Procedure("carte-grise", 15, 3.5, 0.7, 0.45),
            Procedure("permis-conduire", 30, 9.0, 0.6, 0.25),
            Procedure("carte-identite", 30, 12.0, 0.5, 0.15),
            Procedure("passeport", 30, 12.0, 0.5, 0.15),
        ),
    ),
    NetworkProfile(
        code=FRANCE_SERVICES_NETWORK,
        label="France services",
        calls_per_year=4e6,
        cases_per_year=0,
        mean_wait_seconds=12,
        sites_per_100k=0.0,
        site_hours=(),
        counters=(1, 3),
    ),
)
PROFILES_BY_CODE = {profile.code: profile for profile in PROFILES}
NETWORKS: tuple[str, ...] = tuple(profile.code for profile in PROFILES)


@dataclass(frozen=True)
class SimSite:
    """A registry entry plus what only the simulator knows: counters and traffic weights."""

    site: Site
    counters: int
    call_weight: float
    case_weight: float


def _weekly(days: Sequence[str]) -> WeeklyHours:
    periods = {name: parse_day(text)[0] for name, text in zip(WEEKDAYS, (*days, "", "", ""), strict=False)}
    return WeeklyHours(**periods)


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def _communes(france_services: Iterable[Site]) -> dict[str, list[str]]:
    """Real communes per department, from the France services file, in a stable order."""
    found: dict[str, set[str]] = defaultdict(set)
    for site in france_services:
        if site.commune:
            found[site.department].add(site.commune)
    return {department: sorted(names) for department, names in found.items()}


def _closures(site_id: str, timezone: str, span: tuple[date, date] | None) -> list[Closure]:
    """A few announced whole-day closures (staff training, moves) within the span."""
    if span is None:
        return []
    first, last = span
    days = (last - first).days + 1
    rng = random.Random(_stable(site_id))  # noqa: S311 - simulation, not security
    zone = ZoneInfo(timezone)
    closures = []
    for _ in range(days):
        if rng.random() < 0.004:
            day = first + timedelta(days=rng.randrange(days))
            start = datetime.combine(day, time(0), zone)
            closures.append(
                Closure(
                    start=start,
                    end=datetime.combine(day + timedelta(days=1), time(0), zone),
                    reason=rng.choice(("formation des agents", "déménagement", "inventaire annuel")),
                    announced=True,
                )
            )
    return sorted(closures, key=lambda c: c.start)


def _site(
    site_id: str,
    network: str,
    name: str,
    department: Department,
    commune: str,
    weekly: WeeklyHours,
    span: tuple[date, date] | None,
    kind: Literal["site", "call_centre"] = "site",
) -> Site:
    timezone = department_timezone(department.code)
    return Site(
        site_id=site_id,
        network=network,
        name=name,
        department=department.code,
        commune=commune,
        timezone=timezone,
        kind=kind,
        schedules=[Schedule(weekly=weekly)],
        closures=_closures(site_id, timezone, span) if kind == "site" else [],
    )


def _network_sites(
    profile: NetworkProfile, communes: dict[str, list[str]], span: tuple[date, date] | None
) -> list[SimSite]:
    sites: list[SimSite] = []
    by_code = {d.code: d for d in DEPARTMENTS}
    low, high = profile.counters
    if profile.site_hours:
        for department in DEPARTMENTS:
            count = max(1, round(department.population / 100 * profile.sites_per_100k))
            others = [c for c in communes.get(department.code, []) if c != department.prefecture]
            rng = random.Random(_stable(f"{profile.code}|{department.code}"))  # noqa: S311
            places = [department.prefecture, *rng.sample(others, min(len(others), count - 1))]
            for number, commune in enumerate(places, start=1):
                site_id = f"{profile.code}-{department.code.lower()}-{number:03d}"
                main = number == 1
                template = profile.site_hours[_stable(site_id) % len(profile.site_hours)]
                counters = high + 2 if main else low + _stable(site_id + "c") % (high - low + 1)
                sites.append(
                    SimSite(
                        _site(
                            site_id,
                            profile.code,
                            f"{profile.label} – {'accueil principal' if main else 'accueil'} {commune}",
                            department,
                            commune,
                            _weekly(template),
                            span,
                        ),
                        counters=counters,
                        call_weight=1.0 if profile.call_routing == "sites" else 0.0,
                        case_weight=department.population * (0.6 if main else 0.4 / max(1, len(places) - 1))
                        if not profile.back_offices
                        else 0.0,
                    )
                )
    for number, code in enumerate(profile.back_offices, start=1):
        department = by_code[code]
        sites.append(
            SimSite(
                _site(
                    f"{profile.code}-bo-{number:02d}",
                    profile.code,
                    f"{profile.label} – centre d'instruction {department.prefecture}",
                    department,
                    department.prefecture,
                    WeeklyHours(),  # not open to the public: never scheduled
                    None,
                ),
                counters=0,
                call_weight=0.0,
                case_weight=1.0,
            )
        )
    if profile.call_routing != "sites":
        centres = [d.code for d in DEPARTMENTS] if profile.call_routing == "departmental" else list(profile.centres)
        for code in centres:
            department = by_code[code]
            sites.append(
                SimSite(
                    _site(
                        f"{profile.code}-cc-{code.lower()}",
                        profile.code,
                        f"{profile.label} – plateforme téléphonique {department.prefecture}",
                        department,
                        department.prefecture,
                        _weekly(profile.centre_hours),
                        None,
                        kind="call_centre",
                    ),
                    counters=0,
                    call_weight=department.population if profile.call_routing == "departmental" else 1.0,
                    case_weight=0.0,
                )
            )
    return sites


def build_registry(
    france_services: Sequence[Site],
    networks: Iterable[str] = NETWORKS,
    closures_span: tuple[date, date] | None = None,
) -> list[SimSite]:
    """Every simulated site of ``networks``, France services from the real file.

    ``closures_span`` (first and last local day) adds a few announced closures within it.
    """
    wanted = set(networks)
    unknown = wanted - set(PROFILES_BY_CODE)
    if unknown:
        raise ValueError(f"unknown network(s) {', '.join(sorted(unknown))}; known: {', '.join(NETWORKS)}")
    communes = _communes(france_services)
    registry: list[SimSite] = []
    for profile in PROFILES:
        if profile.code not in wanted:
            continue
        if profile.code == FRANCE_SERVICES_NETWORK:
            low, high = profile.counters
            for real in france_services:
                site = (
                    real
                    if closures_span is None
                    else real.model_copy(update={"closures": _closures(real.site_id, real.timezone, closures_span)})
                )
                registry.append(
                    SimSite(
                        site, counters=low + _stable(site.site_id) % (high - low + 1), call_weight=1.0, case_weight=0
                    )
                )
        else:
            registry += _network_sites(profile, communes, closures_span)
    return registry


def span_days(start: datetime, end: datetime) -> tuple[date, date]:
    """Local days a span touches, with a day of margin for time zones."""
    return (start.astimezone(UTC).date() - timedelta(days=1), end.astimezone(UTC).date() + timedelta(days=1))
