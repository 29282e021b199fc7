"""Moved into the cohortflow package (see cohortflow._moved); this path works for one release."""

from cohortflow._moved import install

__getattr__, __dir__ = install(__name__)
