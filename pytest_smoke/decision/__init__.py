"""The decision layer: outcomes from reports, then from verdict to action.

Plain Python below the pytest glue: :mod:`.tally` turns each test report into outcomes,
:mod:`.flow` takes the verdict to a decision, a rollback and its verification.
"""

from . import ledger
from .flow import DecisionInputs, run, shared_ledger
from .tally import PhaseReport, Selection, Tally

__all__ = ["DecisionInputs", "PhaseReport", "Selection", "Tally", "ledger", "run", "shared_ledger"]
