"""Reports: a claim's runs (read from the store as a neutral table) into results/ and dashboards/.

write: tables, figures, README and verdict per claim; dashboard: the static HTML pages.
Reads runs through harness.tracking, never Optuna studies.
"""
