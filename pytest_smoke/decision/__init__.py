"""The decision layer: outcomes from reports, then from verdict to action.

Plain Python below the pytest glue: :mod:`.tally` turns each test report into outcomes,
:mod:`.flow` takes the verdict to a decision, a rollback and its verification.
"""

from .flow import DecisionInputs, run
from .tally import PhaseReport, Selection, Tally

__all__ = ["DecisionInputs", "PhaseReport", "Selection", "Tally", "run"]
