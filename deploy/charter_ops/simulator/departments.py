"""French departments: code, name, prefecture and population, for synthetic sites.

Populations are INSEE legal populations (2021), rounded to the thousand: they weigh how
many sites a network has in a department and how much traffic each one gets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Department:
    """One department of the synthetic networks."""

    code: str
    name: str
    prefecture: str
    population: int  # thousands


_TABLE = """
01|Ain|Bourg-en-Bresse|657
02|Aisne|Laon|528
03|Allier|Moulins|335
04|Alpes-de-Haute-Provence|Digne-les-Bains|165
05|Hautes-Alpes|Gap|141
06|Alpes-Maritimes|Nice|1098
07|Ardèche|Privas|329
08|Ardennes|Charleville-Mézières|270
09|Ariège|Foix|155
10|Aube|Troyes|310
11|Aude|Carcassonne|376
12|Aveyron|Rodez|280
13|Bouches-du-Rhône|Marseille|2056
14|Calvados|Caen|697
15|Cantal|Aurillac|144
16|Charente|Angoulême|352
17|Charente-Maritime|La Rochelle|657
18|Cher|Bourges|298
19|Corrèze|Tulle|240
2A|Corse-du-Sud|Ajaccio|160
2B|Haute-Corse|Bastia|182
21|Côte-d'Or|Dijon|534
22|Côtes-d'Armor|Saint-Brieuc|602
23|Creuse|Guéret|116
24|Dordogne|Périgueux|414
25|Doubs|Besançon|545
26|Drôme|Valence|520
27|Eure|Évreux|600
28|Eure-et-Loir|Chartres|432
29|Finistère|Quimper|918
30|Gard|Nîmes|752
31|Haute-Garonne|Toulouse|1432
32|Gers|Auch|192
33|Gironde|Bordeaux|1654
34|Hérault|Montpellier|1201
35|Ille-et-Vilaine|Rennes|1095
36|Indre|Châteauroux|218
37|Indre-et-Loire|Tours|612
38|Isère|Grenoble|1283
39|Jura|Lons-le-Saunier|259
40|Landes|Mont-de-Marsan|420
41|Loir-et-Cher|Blois|329
42|Loire|Saint-Étienne|766
43|Haute-Loire|Le Puy-en-Velay|228
44|Loire-Atlantique|Nantes|1450
45|Loiret|Orléans|682
46|Lot|Cahors|174
47|Lot-et-Garonne|Agen|331
48|Lozère|Mende|76
49|Maine-et-Loire|Angers|821
50|Manche|Saint-Lô|490
51|Marne|Châlons-en-Champagne|566
52|Haute-Marne|Chaumont|170
53|Mayenne|Laval|307
54|Meurthe-et-Moselle|Nancy|733
55|Meuse|Bar-le-Duc|183
56|Morbihan|Vannes|763
57|Moselle|Metz|1046
58|Nièvre|Nevers|200
59|Nord|Lille|2611
60|Oise|Beauvais|831
61|Orne|Alençon|278
62|Pas-de-Calais|Arras|1462
63|Puy-de-Dôme|Clermont-Ferrand|664
64|Pyrénées-Atlantiques|Pau|687
65|Hautes-Pyrénées|Tarbes|229
66|Pyrénées-Orientales|Perpignan|482
67|Bas-Rhin|Strasbourg|1152
68|Haut-Rhin|Colmar|767
69|Rhône|Lyon|1883
70|Haute-Saône|Vesoul|235
71|Saône-et-Loire|Mâcon|551
72|Sarthe|Le Mans|566
73|Savoie|Chambéry|439
74|Haute-Savoie|Annecy|834
75|Paris|Paris|2133
76|Seine-Maritime|Rouen|1255
77|Seine-et-Marne|Melun|1421
78|Yvelines|Versailles|1448
79|Deux-Sèvres|Niort|375
80|Somme|Amiens|570
81|Tarn|Albi|389
82|Tarn-et-Garonne|Montauban|261
83|Var|Toulon|1076
84|Vaucluse|Avignon|561
85|Vendée|La Roche-sur-Yon|685
86|Vienne|Poitiers|438
87|Haute-Vienne|Limoges|372
88|Vosges|Épinal|363
89|Yonne|Auxerre|335
90|Territoire de Belfort|Belfort|141
91|Essonne|Évry-Courcouronnes|1301
92|Hauts-de-Seine|Nanterre|1624
93|Seine-Saint-Denis|Bobigny|1644
94|Val-de-Marne|Créteil|1407
95|Val-d'Oise|Cergy|1249
971|Guadeloupe|Basse-Terre|384
972|Martinique|Fort-de-France|361
973|Guyane|Cayenne|286
974|La Réunion|Saint-Denis|868
976|Mayotte|Mamoudzou|256
"""

DEPARTMENTS: tuple[Department, ...] = tuple(
    Department(code, name, prefecture, int(population))
    for code, name, prefecture, population in (line.split("|") for line in _TABLE.strip().splitlines())
)

#: ``holidays.France`` subdivision of departments whose public holidays differ from the
#: national list (Alsace-Moselle, overseas departments and collectivities).
HOLIDAY_SUBDIVISIONS: dict[str, str] = {
    "57": "57",
    "67": "6AE",
    "68": "6AE",
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "976": "976",
    "977": "BL",
    "978": "MF",
}
