"""Scrape-time saga gauge: `dockyard_sagas{state}`, how many sagas are in each state."""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shared.gauges import DatabaseGauge
from shared.sagas.store import Sagas


class SagaCollector(DatabaseGauge):
    """Counts one service's sagas by state at every scrape (FAILED ones are never dropped)."""

    name, documentation, labels = "dockyard_sagas", "Sagas in each state", ("state",)
    failure = "count sagas"

    def __init__(self, engine: Engine, sagas: Sagas) -> None:
        super().__init__(engine)
        self.sagas = sagas

    def read(self, conn: Connection) -> dict[tuple[str, ...], float]:
        """How many sagas are in each state."""
        with Session(bind=conn) as session:
            return {(state,): count for state, count in self.sagas.counts(session).items()}
