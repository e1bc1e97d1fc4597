"""buelon's names, for step modules written for buelon: change one import line,
``from buelon.core.step import Result, StepStatus`` →
``from hokuro.compat.buelon import Result, StepStatus``, and the module runs as a hokuro
script's steps (see :mod:`hokuro.script.results` for what each status does)."""

from ..script.results import Result, StepStatus

__all__ = ["Result", "StepStatus"]
