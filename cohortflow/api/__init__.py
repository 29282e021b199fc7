"""The read API (FastAPI on uvicorn): `cohortflow api`; tokens with `cohortflow tokens`."""
