"""The app from the COHORTFLOW_* environment, for `uvicorn cohortflow.api.serve:app` (several processes)."""

from cohortflow.api.app import create_app
from cohortflow.processes import freeze_heap
from cohortflow.settings import load_settings

app = create_app(load_settings())
freeze_heap()
