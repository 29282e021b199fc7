"""The one exception tree of cohortflow.

Every error a user can see derives from :class:`CohortflowError` and says what
was wrong and what to do. Packages add their own subclasses (in their own
``exceptions.py``) under the branches below; driver errors (psycopg, redis,
aiokafka) are converted at the edges, and only :class:`OperationalError` is
worth retrying.
"""

from __future__ import annotations


class CohortflowError(Exception):
    """Root of every error cohortflow raises on purpose."""

    exit_code = 1


class SettingsError(CohortflowError):
    """A ``COHORTFLOW_*`` variable is missing, malformed or out of range."""

    exit_code = 2


class OperationalError(CohortflowError):
    """A service (Kafka, PostgreSQL, Redis) is unreachable or failed transiently; retrying may help."""

    exit_code = 3


class ServiceUnavailable(OperationalError):
    """A service did not answer at the configured address within the time allowed."""


class IntegrityError(CohortflowError):
    """Stored data contradicts what cohortflow expects (e.g. a migration ran with another schema)."""

    exit_code = 4


class StackError(CohortflowError):
    """The local service stack could not be installed, started or stopped."""

    exit_code = 5
