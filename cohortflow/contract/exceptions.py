"""Errors of the schemas package.

Decoding never raises (a bad record is a :class:`cohortflow.contract.codec.Rejection`);
only a contract that cannot work is an error.
"""

from __future__ import annotations

from cohortflow.errors import CohortflowError


class SchemaError(CohortflowError):
    """The event contract is configured in a way no record could satisfy (e.g. no pillars)."""

    exit_code = 2
