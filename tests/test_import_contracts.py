"""Every module and package directly under `hami` has a place in .importlinter's layers, and
every service is in the independence contract (lint-imports enforces the contracts
themselves; `make lint` runs both)."""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import hami

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"scheduler", "agent", "monitor", "webui", "sim", "demo", "node"}


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser


def named(value: str) -> set[str]:
    return {
        part.strip().removeprefix("hami.")
        for line in value.splitlines()
        for part in line.split("|")
        if part.strip()
    }


def test_every_top_level_module_is_in_a_layer() -> None:
    layers = named(contracts()["importlinter:contract:layers"]["layers"])
    present = {m.name for m in pkgutil.iter_modules(hami.__path__)}
    assert present - layers == set(), "add these to .importlinter's layers"
    assert layers - present == set(), "these layers name nothing"


def test_every_service_is_independent() -> None:
    modules = named(contracts()["importlinter:contract:services-independent"]["modules"])
    assert modules == SERVICES
